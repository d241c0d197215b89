// Independent check of a trustbuild Sigstore bundle with sigstore-js (@sigstore/verify), offline.
// Usage: node verify_bundle.js BUNDLE.json PUBLIC_KEY.pem [ARTIFACT]
// (ARTIFACT: the signed file, for a messageSignature bundle made by sign-blob)
// Trust material is built from the public key alone (no TUF fetch, no transparency log).
// Prints one JSON line {"ok": true, "payloadType": ..., "payload": base64} or {"ok": false, "error": ...}
// and exits 0 when the bundle verifies, 1 otherwise.
'use strict';
const fs = require('fs');
const crypto = require('crypto');
const { bundleFromJSON } = require('@sigstore/bundle');
const { Verifier, toSignedEntity } = require('@sigstore/verify');

function main() {
  const [bundlePath, keyPath, artifactPath] = process.argv.slice(2);
  const bundle = bundleFromJSON(JSON.parse(fs.readFileSync(bundlePath, 'utf8')));
  const publicKey = crypto.createPublicKey(fs.readFileSync(keyPath, 'utf8'));
  const trust = {
    certificateAuthorities: [],
    timestampAuthorities: [],
    tlogs: [],
    ctlogs: [],
    publicKey: () => ({ publicKey, validFor: () => true }),
  };
  const verifier = new Verifier(trust, { tlogThreshold: 0, ctlogThreshold: 0, timestampThreshold: 0 });
  const artifact = artifactPath ? fs.readFileSync(artifactPath) : undefined;
  verifier.verify(toSignedEntity(bundle, artifact));
  if (bundle.content.$case === 'messageSignature') {
    return { ok: true, messageSignature: true };
  }
  const env = bundle.content.dsseEnvelope;
  return { ok: true, payloadType: env.payloadType, payload: Buffer.from(env.payload).toString('base64') };
}

try {
  console.log(JSON.stringify(main()));
} catch (err) {
  console.log(JSON.stringify({ ok: false, error: `${err.code || err.name}: ${err.message}` }));
  process.exit(1);
}

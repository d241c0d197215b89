// Independent check of a trustbuild Sigstore bundle with sigstore-js (@sigstore/verify), offline.
// Usage: node verify_bundle.js BUNDLE.json PUBLIC_KEY.pem
// Trust material is built from the public key alone (no TUF fetch, no transparency log).
// Prints one JSON line {"ok": true, "payloadType": ..., "payload": base64} or {"ok": false, "error": ...}
// and exits 0 when the bundle verifies, 1 otherwise.
'use strict';
const fs = require('fs');
const crypto = require('crypto');
const { bundleFromJSON } = require('@sigstore/bundle');
const { Verifier, toSignedEntity } = require('@sigstore/verify');

function main() {
  const [bundlePath, keyPath] = process.argv.slice(2);
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
  verifier.verify(toSignedEntity(bundle));
  const env = bundle.content.dsseEnvelope;
  return { ok: true, payloadType: env.payloadType, payload: Buffer.from(env.payload).toString('base64') };
}

try {
  console.log(JSON.stringify(main()));
} catch (err) {
  console.log(JSON.stringify({ ok: false, error: `${err.code || err.name}: ${err.message}` }));
  process.exit(1);
}

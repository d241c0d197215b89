// Independent check of a keyless Sigstore bundle with sigstore-js (@sigstore/verify), offline.
// Usage: node verify_keyless.js BUNDLE.json TRUSTED_ROOT.json IDENTITY ISSUER [ARTIFACT]
// (ARTIFACT: the signed file, for a messageSignature bundle made by sign-blob)
// Trust material is the given Sigstore trusted_root.json (Fulcio CA, Rekor and CT log keys):
// the certificate chain, its SCT, the Rekor entry (SET / inclusion proof and checkpoint) and the
// signature are checked, then the certificate's SAN and OIDC issuer against IDENTITY / ISSUER.
// Prints one JSON line {"ok": true, ...} or {"ok": false, "error": ...}; exits 0 / 1.
'use strict';
const fs = require('fs');
const { bundleFromJSON } = require('@sigstore/bundle');
const { TrustedRoot } = require('@sigstore/protobuf-specs');
const { Verifier, toSignedEntity, toTrustMaterial } = require('@sigstore/verify');

function main() {
  const [bundlePath, rootPath, identity, issuer, artifactPath] = process.argv.slice(2);
  const bundle = bundleFromJSON(JSON.parse(fs.readFileSync(bundlePath, 'utf8')));
  const trust = toTrustMaterial(TrustedRoot.fromJSON(JSON.parse(fs.readFileSync(rootPath, 'utf8'))));
  const verifier = new Verifier(trust, { tlogThreshold: 1, ctlogThreshold: 1, timestampThreshold: 1 });
  const artifact = artifactPath ? fs.readFileSync(artifactPath) : undefined;
  const signer = verifier.verify(toSignedEntity(bundle, artifact),
    { subjectAlternativeName: identity, extensions: { issuer } });
  const id = signer.identity || {};
  return { ok: true, content: bundle.content.$case, identity: id.subjectAlternativeName,
    issuer: (id.extensions || {}).issuer };
}

try {
  console.log(JSON.stringify(main()));
} catch (err) {
  console.log(JSON.stringify({ ok: false, error: `${err.code || err.name}: ${err.message}` }));
  process.exit(1);
}

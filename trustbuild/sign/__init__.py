"""cosign-compatible image signing and verification.

- :mod:`~trustbuild.sign.keys`: cosign key files (encrypted PEM, PKCS#8), sign/verify primitives.
- :mod:`~trustbuild.sign.simplesigning`: the simple-signing payload (cosign bytes, strict parsing).
- :mod:`~trustbuild.sign.attach`: ``sha256-<hex>.sig``/``.att`` manifests and bundle referrers.
- :mod:`~trustbuild.sign.bundle`: Sigstore bundle v0.3 (DSSE) for image signatures.
- :mod:`~trustbuild.sign.sign` / :mod:`~trustbuild.sign.keyless`: signing with a key / keyless.
- :mod:`~trustbuild.sign.verify`: the one verification engine for image signatures; its keyless
  part, shared with attestations, is :mod:`~trustbuild.sign.keyless_verify` (SCT, Rekor SET,
  inclusion proof, checkpoint, RFC 3161) over :mod:`~trustbuild.sign.trust` (trust roots, the
  public-good default, the one ``KeylessPolicy``) and :mod:`~trustbuild.sign.rekor`.
- :mod:`~trustbuild.sign.identity`: containers/image ``signedIdentity`` rules;
  :mod:`~trustbuild.sign.pki`: containers/image's PKI mode (certificate chained to CA roots).
- :mod:`~trustbuild.sign.copy`: carrying signatures, attestations and bundles along a copy.
- :mod:`~trustbuild.sign.attachments`: ``tree``, ``download``, ``attach`` and ``clean`` (what is
  attached to a digest, as cosign lists, prints, attaches and removes it).

Example::

    from trustbuild.sign.keys import load_signing_key, load_verifying_key
    from trustbuild.sign.sign import sign_image
    from trustbuild.sign.verify import verify_image

    sign_image(store, "1.0", load_signing_key("cosign.key"), docker_reference="r.example/app")
    result = verify_image(store, "1.0", keys=[load_verifying_key("cosign.pub")],
                          docker_reference="r.example/app")
    assert result.ok
"""

from trustbuild._internal.callable_module import make_callable

make_callable(__name__)

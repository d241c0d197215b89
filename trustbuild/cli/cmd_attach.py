"""``trustbuild attach signature|attestation|sbom IMAGE`` (cosign attach): attach what was made
elsewhere to the image's digest.

- ``signature --payload FILE --signature FILE|BASE64|-``: a simple-signing payload (``trustbuild
  generate``) and its signature (``sign-blob``), appended to ``.sig``.
- ``attestation --attestation FILE``: DSSE envelopes (``attest-blob --output-attestation``)
  whose statement names the image digest, appended to ``.att``; a Sigstore bundle becomes a
  referrer.
- ``sbom --sbom FILE --type spdx|cyclonedx|syft``: the ``.sbom`` tag as cosign attach sbom
  writes it.
"""

from __future__ import annotations

import argparse
import json
import sys

from trustbuild.cli.attached import add_image_flags, open_image
from trustbuild.cli.common import names_a_file, read_input
from trustbuild.errors import UsageError

__all__ = ["register"]

_MAX_PAYLOAD = 128 * 1024
_MAX_SIGNATURE = 64 * 1024


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``attach`` and its three subcommands."""
    p = sub.add_parser("attach", help="attach a signature, attestation or SBOM made elsewhere "
                       "(cosign attach)",
                       description="Attach to IMAGE's digest what was made elsewhere.")
    kinds = p.add_subparsers(dest="kind", metavar="KIND", required=True)

    s = kinds.add_parser("signature", help="attach a signature over a generate payload",
                         description="Append a simple-signing signature to the image's .sig "
                         "tag. The payload must name the image's digest (trustbuild generate "
                         "IMAGE > payload.json; sign-blob --key K payload.json > sig).")
    add_image_flags(s)
    s.add_argument("--signature", required=True, metavar="FILE|BASE64|-",
                   help="the base64 signature: a file, the text itself, or - for stdin")
    s.add_argument("--payload", metavar="FILE",
                   help="the signed payload (default: the payload trustbuild generate prints)")
    s.add_argument("--docker-reference", metavar="REPO",
                   help="without --payload: the repository the payload names (required for "
                        "oci: layouts)")
    s.add_argument("--certificate", metavar="PEM",
                   help="the signer's X.509 certificate, stored with the signature (its key "
                        "must verify it)")
    s.add_argument("--certificate-chain", metavar="PEM",
                   help="with --certificate: its chain (intermediates, then the root)")
    s.add_argument("--output", choices=("text", "json"), default="text")
    s.set_defaults(func=_signature)

    a = kinds.add_parser("attestation", help="attach DSSE attestation envelopes",
                         description="Append DSSE envelopes (one or more in the file, or a "
                         "Sigstore bundle) to the image's .att tag. Each statement's subject "
                         "must include the image digest.")
    add_image_flags(a)
    a.add_argument("--attestation", required=True, action="append", metavar="FILE",
                   help="DSSE envelope JSON file (repeatable)")
    a.add_argument("--output", choices=("text", "json"), default="text")
    a.set_defaults(func=_attestation)

    b = kinds.add_parser("sbom", help="attach an SBOM as the .sbom tag (cosign attach sbom)",
                         description="Write the SBOM as the image's sha256-<hex>.sbom tag "
                         "(replacing an earlier one), one layer with cosign's media type: "
                         "text/spdx(+json), application/vnd.cyclonedx+json|xml, "
                         "application/vnd.syft+json. The SBOM is not signed: attest it for "
                         "that (trustbuild attest --type spdxjson).")
    add_image_flags(b)
    b.add_argument("--sbom", required=True, metavar="FILE", help="the SBOM file (- = stdin)")
    b.add_argument("--type", dest="sbom_type", default="spdx",
                   choices=("spdx", "cyclonedx", "syft"), help="SBOM format (default spdx)")
    b.add_argument("--input-format", choices=("json", "xml", "text"),
                   help="encoding (default: json for a .json file, else text/xml)")
    b.add_argument("--output", choices=("text", "json"), default="text")
    b.set_defaults(func=_sbom)


def _signature_text(value: str) -> str:
    """``--signature``: stdin, a file, or the base64 text itself."""
    if value == "-" or names_a_file(value):
        raw = read_input(value, "--signature", _MAX_SIGNATURE)
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            raise UsageError(f"--signature {value}: not base64 text") from None
    if len(value) > _MAX_SIGNATURE:
        raise UsageError("--signature: too long")
    return value


def _done(args: argparse.Namespace, digest: object, manifests: list[str], what: str) -> int:
    if args.output == "json":
        print(json.dumps({"digest": str(digest), "manifests": manifests}))
    else:
        print(f"trustbuild: attached {what} to {args.image} ({digest})", file=sys.stderr)
        for m in manifests:
            print(m)
    return 0


def _signature(args: argparse.Namespace) -> int:
    from trustbuild.cli.cmd_sign import _read_pem, docker_reference_for
    from trustbuild.sign.attachments import attach_signature
    from trustbuild.sign.simplesigning import build_payload

    if args.certificate_chain and not args.certificate:
        raise UsageError("attach signature: --certificate-chain needs --certificate")
    if args.payload and args.docker_reference:
        raise UsageError("attach signature: --docker-reference is for the generated payload; "
                         "it cannot change --payload")
    signature = _signature_text(args.signature)
    payload = read_input(args.payload, "--payload", _MAX_PAYLOAD) if args.payload else None
    cert = _read_pem(args.certificate, "--certificate")
    chain = _read_pem(args.certificate_chain, "--certificate-chain")
    with open_image(args) as img:
        if payload is None:
            repo = docker_reference_for(img.location, args.docker_reference, required=True)
            assert repo is not None
            payload = build_payload(repo, img.subject.digest)
        desc = attach_signature(img.store, img.subject, payload, signature,
                                certificate_pem=cert, chain_pem=chain)
    return _done(args, img.subject.digest, [str(desc.digest)], "a signature")


def _attestation(args: argparse.Namespace) -> int:
    from trustbuild.attest.envelopes import MAX_ATTESTATION_BYTES, attach_attestations

    files = [(p, read_input(p, "--attestation", MAX_ATTESTATION_BYTES))
             for p in args.attestation]
    with open_image(args) as img:
        written = [str(d.digest) for p, raw in files
                   for d in attach_attestations(img.store, img.subject, raw, name=p)]
    return _done(args, img.subject.digest, list(dict.fromkeys(written)), "attestations")


def _sbom(args: argparse.Namespace) -> int:
    from trustbuild.sign.attachments import MAX_SBOM_BYTES, attach_sbom, sbom_media_type

    media_type = sbom_media_type(args.sbom_type, path=args.sbom,
                                 input_format=args.input_format)
    data = read_input(args.sbom, "--sbom", MAX_SBOM_BYTES)
    with open_image(args) as img:
        desc = attach_sbom(img.store, img.subject, data, media_type)
    if args.output != "json":
        print(f"Uploading SBOM file for [{args.image}] to [{img.subject.digest.tag_form}.sbom] "
              f"with mediaType [{media_type}].", file=sys.stderr)
    return _done(args, img.subject.digest, [str(desc.digest)], f"a {media_type} SBOM")

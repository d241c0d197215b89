"""``trustbuild download signature|attestation|sbom IMAGE`` (cosign download).

- ``signature``: one JSON object per ``.sig`` layer, per line, as cosign prints its
  SignedPayload (``Base64Signature``, ``Payload`` base64, ``Cert``, ``Chain``, ``Bundle``,
  ``RFC3161Timestamp``), then each Sigstore signature bundle referrer as its bundle JSON.
- ``attestation``: one DSSE envelope per line (``--predicate-type`` filters).
- ``sbom``: the bytes of the ``.sbom`` tag's SBOM, unchanged (``--output-file`` writes them).
Nothing here checks a signature: use ``verify`` / ``verify-attestation`` for that.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from trustbuild._internal.jsonload import load_object
from trustbuild.cli.attached import add_image_flags, open_image
from trustbuild.errors import UsageError, VerificationError

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``download`` and its three subcommands."""
    p = sub.add_parser("download", help="print the signatures, attestations or SBOM attached "
                       "to an image (cosign download)",
                       description="Print what is attached to IMAGE's digest, unverified.")
    kinds = p.add_subparsers(dest="kind", metavar="KIND", required=True)

    s = kinds.add_parser("signature", help="the .sig layers (and signature bundles), one JSON "
                         "per line")
    add_image_flags(s)
    s.add_argument("--output", choices=("text", "json"), default="text",
                   help="text: one JSON object per line (cosign's format); json: one document")
    s.set_defaults(func=_signature)

    a = kinds.add_parser("attestation", help="the DSSE envelopes, one per line")
    add_image_flags(a)
    a.add_argument("--predicate-type", metavar="TYPE",
                   help="only statements of this predicate type (short name or URI)")
    a.add_argument("--output", choices=("text", "json"), default="text",
                   help="text: one envelope per line (cosign's format); json: one document")
    a.set_defaults(func=_attestation)

    b = kinds.add_parser("sbom", help="the SBOM attached with attach sbom, byte for byte")
    add_image_flags(b)
    b.add_argument("--output-file", metavar="FILE", help="write the SBOM here, not to stdout")
    b.set_defaults(func=_sbom)


def _signature(args: argparse.Namespace) -> int:
    from trustbuild.sign.attachments import signature_bundles, signed_payloads
    from trustbuild.sign.bundle import MAX_BUNDLE_BYTES

    with open_image(args) as img:
        digest = img.subject.digest
        payloads = signed_payloads(img.store, digest)
        bundles = [load_object(b, what=f"{img.store.describe()}: bundle referrer of {digest}",
                               error=VerificationError, max_bytes=MAX_BUNDLE_BYTES)
                   for b in signature_bundles(img.store, digest)]
    if not payloads and not bundles:
        raise VerificationError(f"no signatures associated with {args.image} ({digest})")
    if args.output == "json":
        print(json.dumps({"digest": str(digest), "signatures": payloads, "bundles": bundles},
                         indent=2))
        return 0
    for obj in (*payloads, *bundles):
        print(json.dumps(obj, separators=(",", ":")))
    return 0


def _attestation(args: argparse.Namespace) -> int:
    from trustbuild.attest.envelopes import attestation_envelopes
    from trustbuild.attest.statement import predicate_type_uri

    ptype = predicate_type_uri(args.predicate_type) if args.predicate_type else None
    with open_image(args) as img:
        envelopes = attestation_envelopes(img.store, img.subject.digest, predicate_type=ptype)
    if args.output == "json":
        print(json.dumps({"digest": str(img.subject.digest), "attestations": envelopes},
                         indent=2))
        return 0
    if not envelopes:
        print(f"trustbuild: no attestations{' of type ' + ptype if ptype else ''} attached to "
              f"{img.subject.digest}", file=sys.stderr)
    for env in envelopes:
        print(json.dumps(env, separators=(",", ":")))
    return 0


def _sbom(args: argparse.Namespace) -> int:
    from trustbuild.sign.attachments import read_sbom

    with open_image(args) as img:
        media_type, data, count = read_sbom(img.store, img.subject.digest)
    print("WARNING: Downloading SBOMs this way does not ensure their authenticity; attest an "
          "SBOM (trustbuild attest --type spdxjson) and check it with verify-attestation.",
          file=sys.stderr)
    print(f"Found SBOM of media type: {media_type}", file=sys.stderr)
    if count > 1:
        print(f"trustbuild: the .sbom tag has {count} layers; only the first is written",
              file=sys.stderr)
    if args.output_file:
        try:
            Path(args.output_file).write_bytes(data)
        except OSError as exc:
            raise UsageError(f"--output-file {args.output_file}: cannot write: "
                             f"{exc.strerror or exc}") from None
        return 0
    sys.stdout.flush()
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()
    return 0

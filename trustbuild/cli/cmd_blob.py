"""``sign-blob``, ``verify-blob``, ``attest-blob``, ``verify-blob-attestation`` (cosign's names).

Signatures print as base64 on stdout (``--output-signature FILE`` writes them); ``--bundle FILE``
writes or reads a Sigstore bundle v0.3 (cosign 3's ``--bundle``; cosign 2's
``--new-bundle-format``); ``verify-blob`` also reads cosign 2's own bundle files.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from trustbuild.cli.common import add_common_flags, read_input
from trustbuild.errors import UsageError, VerificationError

__all__ = ["register"]

MAX_INPUT_FILE = 64 * 1024 * 1024


def _blob_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("blob", metavar="FILE", help="the file signed or attested")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the four blob commands."""
    p = sub.add_parser("sign-blob", help="sign a file (cosign sign-blob --key)",
                       description="Sign FILE's bytes with a cosign key; print the base64 "
                       "signature.")
    _blob_arg(p)
    p.add_argument("--key", required=True, help="cosign private key file")
    p.add_argument("--output-signature", metavar="FILE", help="also write the signature here")
    p.add_argument("--bundle", metavar="FILE", help="write a Sigstore bundle v0.3 here")
    add_common_flags(p)
    p.set_defaults(func=_sign)

    p = sub.add_parser("verify-blob", help="verify a file's signature (cosign verify-blob --key)",
                       description="Check FILE against --signature or --bundle with --key.")
    _blob_arg(p)
    p.add_argument("--key", required=True, action="append", help="public key (repeatable)")
    p.add_argument("--signature", metavar="FILE|BASE64", help="the signature (file or base64)")
    p.add_argument("--bundle", metavar="FILE", help="a Sigstore bundle or a cosign 2 bundle file")
    add_common_flags(p)
    p.set_defaults(func=_verify)

    p = sub.add_parser("attest-blob", help="attest a file (cosign attest-blob --key)",
                       description="Sign an in-toto statement about FILE (name, sha256) as DSSE.")
    _blob_arg(p)
    p.add_argument("--key", required=True, help="cosign private key file")
    p.add_argument("--predicate", required=True, metavar="FILE", help="predicate JSON file")
    p.add_argument("--type", default="custom", metavar="TYPE",
                   help="slsaprovenance|spdxjson|cyclonedx|vuln|link|custom or a URI")
    p.add_argument("--output-attestation", metavar="FILE", help="write the DSSE envelope here")
    p.add_argument("--bundle", metavar="FILE", help="write a Sigstore bundle v0.3 here")
    add_common_flags(p)
    p.set_defaults(func=_attest)

    p = sub.add_parser("verify-blob-attestation",
                       help="verify a file's attestation (cosign verify-blob-attestation --key)",
                       description="Check a DSSE envelope (--signature) or Sigstore bundle "
                       "(--bundle) about FILE with --key; print the statement.")
    _blob_arg(p)
    p.add_argument("--key", required=True, action="append", help="public key (repeatable)")
    p.add_argument("--signature", metavar="FILE", help="the DSSE envelope JSON file")
    p.add_argument("--bundle", metavar="FILE", help="the Sigstore bundle file")
    p.add_argument("--type", metavar="TYPE", help="require this predicate type")
    add_common_flags(p)
    p.set_defaults(func=_verify_attestation)


def _read(path: str, flag: str) -> bytes:
    return read_input(path, flag, MAX_INPUT_FILE)


def _write(path: str, data: bytes, flag: str) -> None:
    try:
        Path(path).write_bytes(data)
    except OSError as exc:
        raise UsageError(f"{flag} {path}: cannot write: {exc.strerror or exc}") from None


def _blob(path: str) -> Path:
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"{path}: no such file")
    return p


def _sign(args: argparse.Namespace) -> int:
    from trustbuild.sign.blob import sign_blob
    from trustbuild.sign.keys import load_signing_key

    result = sign_blob(load_signing_key(args.key), _blob(args.blob))
    if args.output_signature:
        _write(args.output_signature, result.signature_b64.encode(), "--output-signature")
    if args.bundle:
        _write(args.bundle, result.bundle, "--bundle")
        print(f"Wrote bundle to file {args.bundle}", file=sys.stderr)
    print(result.signature_b64)
    return 0


def _signature_value(value: str) -> bytes:
    """``--signature``: a file holding base64 (or raw DER), else the base64 text itself."""
    from trustbuild._internal.b64 import std_b64decode

    raw = _read(value, "--signature") if Path(value).is_file() else value.encode()
    try:
        return std_b64decode(raw)  # cosign: base64.StdEncoding (line breaks ignored)
    except ValueError:
        if Path(value).is_file():
            return raw  # a raw signature file
        raise UsageError("--signature: neither a file nor base64") from None


def _verify(args: argparse.Namespace) -> int:
    from trustbuild.sign.blob import verify_blob
    from trustbuild.sign.keys import load_verifying_key

    if not args.signature and not args.bundle:
        raise UsageError("verify-blob: give --signature or --bundle")
    keys = [load_verifying_key(k) for k in args.key]
    try:
        verify_blob(_blob(args.blob), keys,
                    signature=_signature_value(args.signature) if args.signature else None,
                    bundle=_read(args.bundle, "--bundle") if args.bundle else None,
                    bundle_name=args.bundle or "bundle")
    except VerificationError as err:
        print(f"Error: {err}", file=sys.stderr)
        return 1
    print("Verified OK", file=sys.stderr)
    return 0


def _attest(args: argparse.Namespace) -> int:
    from trustbuild.attest.blob import attest_blob
    from trustbuild.attest.statement import make_predicate, predicate_type_uri
    from trustbuild.sign.keys import load_signing_key

    ptype = predicate_type_uri(args.type)
    predicate = make_predicate(_read(args.predicate, "--predicate"), ptype)
    envelope, bundle = attest_blob(load_signing_key(args.key), _blob(args.blob),
                                   predicate=predicate, predicate_type=ptype)
    if args.output_attestation:
        _write(args.output_attestation, envelope.to_json(), "--output-attestation")
    if args.bundle:
        _write(args.bundle, bundle, "--bundle")
    if not args.output_attestation and not args.bundle:
        print(envelope.to_json().decode())
    return 0


def _verify_attestation(args: argparse.Namespace) -> int:
    from trustbuild.attest.blob import verify_blob_attestation
    from trustbuild.attest.statement import predicate_type_uri
    from trustbuild.sign.keys import load_verifying_key

    if bool(args.signature) == bool(args.bundle):
        raise UsageError("verify-blob-attestation: give one of --signature or --bundle")
    source = args.bundle or args.signature
    keys = [load_verifying_key(k) for k in args.key]
    try:
        statement = verify_blob_attestation(
            _blob(args.blob), keys, _read(source, "--bundle" if args.bundle else "--signature"),
            predicate_type=predicate_type_uri(args.type) if args.type else None, name=source)
    except VerificationError as err:
        print(f"Error: {err}", file=sys.stderr)
        return 1
    print("Verified OK", file=sys.stderr)
    print(json.dumps(statement.to_dict(), separators=(",", ":")))
    return 0

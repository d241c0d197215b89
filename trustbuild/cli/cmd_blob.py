"""``sign-blob``, ``verify-blob``, ``attest-blob``, ``verify-blob-attestation`` (cosign's names).

Signatures print as base64 on stdout (``--output-signature FILE`` writes them); ``--bundle FILE``
writes or reads a Sigstore bundle v0.3 (cosign 3's ``--bundle``; cosign 2's
``--new-bundle-format``); ``verify-blob`` also reads cosign 2's own bundle files. With a key
(``--key``) or keyless (``--keyless``: Fulcio certificate, Rekor entry; verified offline with
``--certificate-identity`` / ``--certificate-oidc-issuer`` against ``--trusted-root``, default
the Sigstore public-good root).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from trustbuild.cli.common import (
    add_common_flags,
    add_keyless_sign_flags,
    add_keyless_verify_flags,
    keyless_from_args,
    names_a_file,
    read_input,
)
from trustbuild.errors import UsageError, VerificationError

if TYPE_CHECKING:
    from trustbuild.sign.trust import KeylessPolicy, TrustRoots

__all__ = ["register"]

MAX_INPUT_FILE = 64 * 1024 * 1024


def _blob_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("blob", metavar="FILE", help="the file signed or attested")


def _keyless_sign_flags(p: argparse.ArgumentParser, what: str) -> None:
    """The keyless signing flags of sign/attest/build, and the blob commands' own
    ``--fulcio-url`` / ``--rekor-url`` (cosign sign-blob's)."""
    add_keyless_sign_flags(p, what=what)
    p.add_argument("--fulcio-url", metavar="URL",
                   help="keyless: this Fulcio instead of the trust config's")
    p.add_argument("--rekor-url", metavar="URL",
                   help="keyless: this Rekor (v1 API) instead of the trust config's")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the four blob commands."""
    p = sub.add_parser("sign-blob", help="sign a file (cosign sign-blob)",
                       description="Sign FILE's bytes with a cosign key or keyless (Fulcio "
                       "certificate, Rekor entry); print the base64 signature.")
    _blob_arg(p)
    p.add_argument("--key", help="cosign private key file")
    _keyless_sign_flags(p, "FILE")
    p.add_argument("--output-signature", metavar="FILE", help="also write the signature here")
    p.add_argument("--output-certificate", metavar="FILE",
                   help="keyless: write the Fulcio certificate (PEM) here")
    p.add_argument("--bundle", metavar="FILE", help="write a Sigstore bundle v0.3 here")
    add_common_flags(p)
    p.set_defaults(func=_sign)

    p = sub.add_parser("verify-blob", help="verify a file's signature (cosign verify-blob)",
                       description="Check FILE against --signature or --bundle with --key, or "
                       "a keyless --bundle with --certificate-identity and "
                       "--certificate-oidc-issuer (offline).")
    _blob_arg(p)
    p.add_argument("--key", action="append", default=[], help="public key (repeatable)")
    add_keyless_verify_flags(p)
    p.add_argument("--signature", metavar="FILE|BASE64", help="the signature (file or base64)")
    p.add_argument("--bundle", metavar="FILE", help="a Sigstore bundle or a cosign 2 bundle file")
    add_common_flags(p)
    p.set_defaults(func=_verify)

    p = sub.add_parser("attest-blob", help="attest a file (cosign attest-blob)",
                       description="Sign an in-toto statement about FILE (name, sha256) as DSSE, "
                       "with a key or keyless.")
    _blob_arg(p)
    p.add_argument("--key", help="cosign private key file")
    _keyless_sign_flags(p, "the attestation of FILE")
    p.add_argument("--predicate", required=True, metavar="FILE", help="predicate JSON file")
    p.add_argument("--type", default="custom", metavar="TYPE",
                   help="slsaprovenance|spdxjson|cyclonedx|vuln|link|custom or a URI")
    p.add_argument("--output-attestation", metavar="FILE", help="write the DSSE envelope here")
    p.add_argument("--bundle", metavar="FILE", help="write a Sigstore bundle v0.3 here")
    add_common_flags(p)
    p.set_defaults(func=_attest)

    p = sub.add_parser("verify-blob-attestation",
                       help="verify a file's attestation (cosign verify-blob-attestation)",
                       description="Check a DSSE envelope (--signature) or Sigstore bundle "
                       "(--bundle) about FILE with --key, or a keyless --bundle with "
                       "--certificate-identity and --certificate-oidc-issuer; print the "
                       "statement.")
    _blob_arg(p)
    p.add_argument("--key", action="append", default=[], help="public key (repeatable)")
    add_keyless_verify_flags(p)
    p.add_argument("--signature", metavar="FILE", help="the DSSE envelope JSON file")
    p.add_argument("--bundle", metavar="FILE", help="the Sigstore bundle file")
    p.add_argument("--type", metavar="TYPE", help="require this predicate type")
    add_common_flags(p)
    p.set_defaults(func=_verify_attestation)


def _signing_mode(args: argparse.Namespace) -> None:
    """--key or --keyless, exactly one; keyless-only flags need --keyless."""
    cmd = args.command if isinstance(getattr(args, "command", None), str) else "sign-blob"
    if not args.key and not args.keyless:
        raise UsageError(f"{cmd}: pass --key KEY or --keyless")
    if args.key and args.keyless:
        raise UsageError(f"{cmd}: --key and --keyless are mutually exclusive")
    if not args.keyless:
        for flag in ("identity_token", "sigstore_trust_config", "fulcio_url", "rekor_url",
                     "output_certificate"):
            if getattr(args, flag, None):
                raise UsageError(f"{cmd}: --{flag.replace('_', '-')} needs --keyless")


def _keyless_policy(args: argparse.Namespace, cmd: str) -> tuple[KeylessPolicy | None,
                                                                 TrustRoots | None]:
    """The keyless policy and trust (cosign's flags), checked against --key."""
    policy, trust = keyless_from_args(args)
    if policy is not None and args.key:
        raise UsageError(f"{cmd}: --key excludes the keyless --certificate-* flags")
    if policy is None and not args.key:
        raise UsageError(f"{cmd}: give --key PUB, or --certificate-identity and "
                         "--certificate-oidc-issuer for a keyless bundle")
    if policy is not None and not args.bundle:
        raise UsageError(f"{cmd}: keyless verification needs --bundle (the certificate and "
                         "the transparency-log entry; nothing is looked up online)")
    return policy, trust


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

    _signing_mode(args)
    blob = _blob(args.blob)
    if args.keyless:
        from trustbuild.sign.keyless import keyless_sign_blob

        result = keyless_sign_blob(blob, identity_token=args.identity_token,
                                   trust_config=args.sigstore_trust_config,
                                   fulcio_url=args.fulcio_url, rekor_url=args.rekor_url)
    else:
        from trustbuild.sign.keys import load_signing_key

        result = sign_blob(load_signing_key(args.key), blob)
    if args.output_signature:
        _write(args.output_signature, result.signature_b64.encode(), "--output-signature")
    if args.output_certificate:
        _write(args.output_certificate, result.certificate_pem.encode(), "--output-certificate")
    if args.bundle:
        _write(args.bundle, result.bundle, "--bundle")
        print(f"Wrote bundle to file {args.bundle}", file=sys.stderr)
    print(result.signature_b64)
    return 0


def _signature_value(value: str) -> bytes:
    """``--signature``: a file holding base64 (or raw DER), else the base64 text itself."""
    from trustbuild._internal.b64 import std_b64decode

    is_file = names_a_file(value)
    raw = _read(value, "--signature") if is_file else value.encode()
    try:
        return std_b64decode(raw)  # cosign: base64.StdEncoding (line breaks ignored)
    except ValueError:
        if is_file:
            return raw  # a raw signature file
        raise UsageError("--signature: neither a file nor base64") from None


def _verify(args: argparse.Namespace) -> int:
    from trustbuild.sign.blob import verify_blob, verify_blob_keyless
    from trustbuild.sign.keys import load_verifying_key

    policy, trust = _keyless_policy(args, "verify-blob")
    if not args.signature and not args.bundle:
        raise UsageError("verify-blob: give --signature or --bundle")
    if policy is not None and args.signature:
        raise UsageError("verify-blob: keyless, the signature is read from --bundle (drop "
                         "--signature)")
    blob = _blob(args.blob)
    try:
        if policy is not None:
            assert trust is not None
            done = verify_blob_keyless(blob, _read(args.bundle, "--bundle"), policy, trust,
                                       bundle_name=args.bundle)
            print(f"Signed by {done.signer} at {done.signed_at.isoformat()} (checked: "
                  f"{', '.join(done.checks)})", file=sys.stderr)
        else:
            keys = [load_verifying_key(k) for k in args.key]
            verify_blob(blob, keys,
                        signature=_signature_value(args.signature) if args.signature else None,
                        bundle=_read(args.bundle, "--bundle") if args.bundle else None,
                        bundle_name=args.bundle or "bundle")
    except VerificationError as err:
        print(f"Error: {err}", file=sys.stderr)
        return 1
    print("Verified OK", file=sys.stderr)
    return 0


def _attest(args: argparse.Namespace) -> int:
    from trustbuild.attest.blob import attest_blob, keyless_attest_blob
    from trustbuild.attest.statement import make_predicate, predicate_type_uri

    _signing_mode(args)
    ptype = predicate_type_uri(args.type)
    predicate = make_predicate(_read(args.predicate, "--predicate"), ptype)
    blob = _blob(args.blob)
    if args.keyless:
        envelope, bundle = keyless_attest_blob(
            blob, predicate=predicate, predicate_type=ptype, identity_token=args.identity_token,
            trust_config=args.sigstore_trust_config, fulcio_url=args.fulcio_url,
            rekor_url=args.rekor_url)
    else:
        from trustbuild.sign.keys import load_signing_key

        envelope, bundle = attest_blob(load_signing_key(args.key), blob, predicate=predicate,
                                       predicate_type=ptype)
    if args.output_attestation:
        _write(args.output_attestation, envelope.to_json(), "--output-attestation")
    if args.bundle:
        _write(args.bundle, bundle, "--bundle")
    if not args.output_attestation and not args.bundle:
        # keyless, the envelope alone cannot be verified (no certificate): print the bundle
        print((bundle if args.keyless else envelope.to_json()).decode())
    return 0


def _verify_attestation(args: argparse.Namespace) -> int:
    from trustbuild.attest.blob import verify_blob_attestation, verify_blob_attestation_keyless
    from trustbuild.attest.statement import predicate_type_uri
    from trustbuild.sign.keys import load_verifying_key

    policy, trust = _keyless_policy(args, "verify-blob-attestation")
    if bool(args.signature) == bool(args.bundle):
        raise UsageError("verify-blob-attestation: give one of --signature or --bundle")
    source = args.bundle or args.signature
    raw = _read(source, "--bundle" if args.bundle else "--signature")
    ptype = predicate_type_uri(args.type) if args.type else None
    blob = _blob(args.blob)
    try:
        if policy is not None:
            assert trust is not None
            statement, vb = verify_blob_attestation_keyless(blob, raw, policy, trust,
                                                            predicate_type=ptype, name=source)
            print(f"Signed by {vb.signer} (checked: {', '.join(vb.checks)})", file=sys.stderr)
        else:
            keys = [load_verifying_key(k) for k in args.key]
            statement = verify_blob_attestation(blob, keys, raw, predicate_type=ptype,
                                                name=source)
    except VerificationError as err:
        print(f"Error: {err}", file=sys.stderr)
        return 1
    print("Verified OK", file=sys.stderr)
    print(json.dumps(statement.to_dict(), separators=(",", ":")))
    return 0

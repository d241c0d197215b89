"""``public-key`` and ``import-key-pair`` (cosign's names and flags)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from trustbuild.cli.common import add_common_flags
from trustbuild.errors import SigningError, UsageError

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``public-key`` and ``import-key-pair``."""
    p = sub.add_parser("public-key", help="print the public key of a private key",
                       description="Write the PEM public key of --key (cosign public-key).")
    p.add_argument("--key", required=True, help="cosign private key file (or PEM)")
    p.add_argument("--outfile", metavar="FILE", help="write here instead of stdout")
    add_common_flags(p)
    p.set_defaults(func=_public_key)

    p = sub.add_parser("import-key-pair", help="import a PEM private key in cosign's format",
                       description="Encrypt a PEM private key (EC P-256/P-384, RSA, Ed25519; "
                       "PKCS#8, SEC1 or PKCS#1) into cosign's format: PREFIX.key and PREFIX.pub. "
                       "The password comes from TRUSTBUILD_PASSWORD / COSIGN_PASSWORD.")
    p.add_argument("--key", required=True, help="the unencrypted PEM private key to import")
    p.add_argument("--output-key-prefix", default="import-cosign", metavar="PREFIX",
                   help="write PREFIX.key and PREFIX.pub (default: import-cosign)")
    p.add_argument("--newer-format", action="store_true",
                   help="ENCRYPTED SIGSTORE PRIVATE KEY (cosign >= 2.0.2) instead of "
                        "ENCRYPTED COSIGN PRIVATE KEY")
    p.add_argument("-f", "--force", action="store_true", help="overwrite existing files")
    add_common_flags(p)
    p.set_defaults(func=_import_key_pair)


def _public_key(args: argparse.Namespace) -> int:
    from trustbuild.sign.keys import load_signing_key

    pem = load_signing_key(args.key).public_key().public_pem()
    if args.outfile:
        try:
            Path(args.outfile).write_bytes(pem)
        except OSError as exc:
            raise UsageError(f"--outfile {args.outfile}: {exc.strerror or exc}") from None
        print(f"Public key written to {args.outfile}", file=sys.stderr)
    else:
        sys.stdout.write(pem.decode())
    return 0


def _import_key_pair(args: argparse.Namespace) -> int:
    from trustbuild.cli.cmd_generate_key_pair import new_password
    from trustbuild.sign.keys import (
        COSIGN_PEM_LABEL,
        SIGSTORE_PEM_LABEL,
        load_signing_key,
        write_key_pair,
    )

    try:
        head = Path(args.key).read_bytes()[:4096]
    except OSError as exc:
        raise UsageError(f"--key {args.key}: cannot read: {exc.strerror or exc}") from None
    if COSIGN_PEM_LABEL.encode() in head or SIGSTORE_PEM_LABEL.encode() in head:
        raise SigningError(f"{args.key}: already in cosign's format; nothing to import")
    key = load_signing_key(args.key)
    key_path, pub_path = write_key_pair(key, args.output_key_prefix, password=new_password(),
                                        newer_format=args.newer_format, overwrite=args.force)
    print(f"Private key written to {key_path}", file=sys.stderr)
    print(f"Public key written to {pub_path}", file=sys.stderr)
    return 0

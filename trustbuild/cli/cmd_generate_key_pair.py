"""``trustbuild generate-key-pair``: write a cosign-compatible encrypted key pair."""

from __future__ import annotations

import argparse
import getpass
import os
import sys

from trustbuild.errors import SigningError
from trustbuild.sign.keys import PASSWORD_ENV_VARS, generate_key_pair

__all__ = ["register", "run", "new_password"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``generate-key-pair`` command."""
    p = sub.add_parser(
        "generate-key-pair", help="write a cosign-compatible key pair (PREFIX.key, PREFIX.pub)",
        description="Generate an ECDSA P-256 key pair in cosign's format. The private key is "
                    "encrypted with the password from TRUSTBUILD_PASSWORD, else COSIGN_PASSWORD, "
                    "else a prompt. By default it is written as ENCRYPTED COSIGN PRIVATE KEY "
                    "(scrypt N=32768), which every cosign and containers/image version reads.")
    p.add_argument("--output-key-prefix", default="cosign", metavar="PREFIX",
                   help="write PREFIX.key and PREFIX.pub (default: cosign)")
    p.add_argument("--newer-format", action="store_true",
                   help="write cosign >= 2.0.2's ENCRYPTED SIGSTORE PRIVATE KEY (scrypt N=65536); "
                        "containers/image < 5.25 (skopeo < 1.12, podman < 4.5) cannot read it")
    p.add_argument("-f", "--force", action="store_true", help="overwrite existing files")
    p.add_argument("-v", "--verbose", action="count", default=0, help="tracebacks on errors")
    p.set_defaults(func=run)


def new_password() -> bytes:
    """The password for a new key: env var, else a confirmed prompt, else SigningError."""
    for var in PASSWORD_ENV_VARS:
        value = os.environ.get(var)
        if value is not None:
            return value.encode()
    if sys.stdin is not None and sys.stdin.isatty():
        first = getpass.getpass("Enter password for private key: ")
        if getpass.getpass("Enter password for private key again: ") != first:
            raise SigningError("passwords do not match")
        return first.encode()
    raise SigningError("no password for the new private key: set TRUSTBUILD_PASSWORD "
                       "(or COSIGN_PASSWORD; an empty value means no password)")


def run(args: argparse.Namespace) -> int:
    """Write the key pair; report the paths on stderr."""
    key_path, pub_path = generate_key_pair(args.output_key_prefix, password=new_password(),
                                           newer_format=args.newer_format, overwrite=args.force)
    print(f"Private key written to {key_path}", file=sys.stderr)
    print(f"Public key written to {pub_path}", file=sys.stderr)
    return 0

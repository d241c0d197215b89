"""Base64 decoding with Go's rules: trustbuild reads exactly what cosign and containers/image read.

- :func:`std_b64decode` is Go's ``base64.StdEncoding.DecodeString`` (also what ``encoding/json``
  does for ``[]byte`` and ``encoding/pem`` for a block body): ``\\r`` and ``\\n`` anywhere are
  ignored, the standard alphabet only, padding required and correct. Cosign signature
  annotations, Rekor bundles and encrypted key files are read this way; a signature annotation
  broken over lines is therefore accepted, as Go accepts it.
- :func:`proto_b64decode` is protobuf-JSON's rule for ``bytes`` fields (Sigstore bundles,
  ``trusted_root.json``) and a superset of go-securesystemslib's DSSE decoding: the standard or
  the URL-safe alphabet, padded or not, ``\\r``/``\\n`` ignored.

Both raise :class:`ValueError` naming the defect; callers turn it into their own one-line error.

Example::

    from trustbuild._internal.b64 import std_b64decode
    sig = std_b64decode("MEUCIQ...\\n...==")
"""

from __future__ import annotations

import base64
import binascii
import re

__all__ = ["std_b64decode", "proto_b64decode"]

_STD = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_URL = re.compile(r"[A-Za-z0-9\-_]*={0,2}")
_NEWLINES = str.maketrans("", "", "\r\n")


def _text(data: str | bytes) -> str:
    if isinstance(data, bytes):
        try:
            data = data.decode("ascii")
        except UnicodeDecodeError:
            raise ValueError("illegal base64 data: non-ASCII byte") from None
    return data.translate(_NEWLINES)


def _decode(s: str, *, urlsafe: bool) -> bytes:
    try:
        if urlsafe:
            return base64.urlsafe_b64decode(s)
        return base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"illegal base64 data ({exc})") from None


def std_b64decode(data: str | bytes) -> bytes:
    """Go's ``base64.StdEncoding.DecodeString``: ValueError unless ``data`` is padded std base64."""
    s = _text(data)
    if _STD.fullmatch(s) is None:
        bad = next((c for c in s.rstrip("=") if not (c.isascii() and (c.isalnum() or c in "+/"))),
                   "=")
        raise ValueError(f"illegal base64 data: unexpected character {bad!r}")
    if len(s) % 4:
        raise ValueError("illegal base64 data: length is not a multiple of 4 (bad padding)")
    return _decode(s, urlsafe=False)


def proto_b64decode(data: str | bytes) -> bytes:
    """protobuf-JSON ``bytes``: standard or URL-safe alphabet, with or without padding."""
    s = _text(data)
    urlsafe = "-" in s or "_" in s
    if (_URL if urlsafe else _STD).fullmatch(s) is None:
        raise ValueError("illegal base64 data: unexpected character")
    if len(s) % 4:
        if "=" in s:
            raise ValueError("illegal base64 data: bad padding")
        s += "=" * (-len(s) % 4)
    return _decode(s, urlsafe=urlsafe)

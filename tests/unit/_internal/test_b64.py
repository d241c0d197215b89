"""Go's base64 rules (encoding/base64 StdEncoding, protobuf JSON bytes), case by case.

Expected values are what Go 1.22 returns for ``base64.StdEncoding.DecodeString`` and
``protojson`` bytes fields on the same input (an error where marked None).
"""

from __future__ import annotations

import pytest

from trustbuild._internal.b64 import proto_b64decode, std_b64decode

STD_CASES = [
    ("", b""),
    ("YQ==", b"a"),
    ("YWI=", b"ab"),
    ("YWJj", b"abc"),
    ("YW\nJj", b"abc"),             # \n anywhere is ignored
    ("YWJj\r\n", b"abc"),
    ("Y\r\nQ\n=\n=", b"a"),          # even inside the padding
    ("YQ", None),                    # StdEncoding requires padding
    ("YQ=", None),
    ("YQ===", None),
    ("YQ==YQ==", None),              # data after padding
    ("YW Jj", None),                 # a space is not ignored (only \r and \n)
    ("YW\tJj", None),
    ("YWJj-_==", None),              # URL-safe alphabet is not StdEncoding
    ("Y", None),
    ("YWJ\x00", None),
]


@pytest.mark.parametrize(("text", "want"), STD_CASES)
def test_std_b64decode_follows_go_stdencoding(text: str, want: bytes | None) -> None:
    if want is None:
        with pytest.raises(ValueError, match="illegal base64 data"):
            std_b64decode(text)
    else:
        assert std_b64decode(text) == want
        assert std_b64decode(text.encode()) == want


@pytest.mark.parametrize(("text", "want"), [
    ("YQ==", b"a"), ("YQ", b"a"), ("YWJj", b"abc"), ("-_8=", b"\xfb\xff"), ("-_8", b"\xfb\xff"),
    ("+/8=", b"\xfb\xff"), ("YW\nJj", b"abc"),
    ("YQ=", None), ("Y", None), ("-/8=", None), ("YQ==YQ", None), ("YW Jj", None),
])
def test_proto_b64decode_follows_protojson(text: str, want: bytes | None) -> None:
    if want is None:
        with pytest.raises(ValueError):
            proto_b64decode(text)
    else:
        assert proto_b64decode(text) == want


def test_non_ascii_bytes_are_refused() -> None:
    with pytest.raises(ValueError, match="non-ASCII"):
        std_b64decode(b"YQ==" + "é".encode())

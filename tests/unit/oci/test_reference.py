"""Docker reference normalisation and transport strings."""

from __future__ import annotations

import pytest

from trustbuild.errors import InvalidDigest, InvalidReference
from trustbuild.oci.digest import Digest
from trustbuild.oci.reference import Reference
from trustbuild.store.location import parse_location

D = "sha256:" + "a" * 64


@pytest.mark.parametrize(("text", "want"), [
    ("alpine", "docker.io/library/alpine:latest"),
    ("alpine:3.19", "docker.io/library/alpine:3.19"),
    ("user/app", "docker.io/user/app:latest"),
    ("index.docker.io/library/busybox", "docker.io/library/busybox:latest"),
    ("localhost/app", "localhost/app:latest"),
    ("localhost:5000/a/b:v1", "localhost:5000/a/b:v1"),
    ("127.0.0.1:5000/x", "127.0.0.1:5000/x:latest"),
    ("quay.io/org/img", "quay.io/org/img:latest"),
    (f"busybox@{D}", f"docker.io/library/busybox@{D}"),
    (f"busybox:1.36@{D}", f"docker.io/library/busybox:1.36@{D}"),
    ("[::1]:5000/app:t", "[::1]:5000/app:t"),
])
def test_normalisation(text: str, want: str) -> None:
    assert str(Reference.parse(text)) == want


@pytest.mark.parametrize("text", ["", "UPPER/case", "a//b", "app:bad tag", "app@sha256:abc",
                                  "app@md5:" + "a" * 32, "host:port:x/y", " app"])
def test_malformed_references_are_refused(text: str) -> None:
    with pytest.raises(InvalidReference):
        Reference.parse(text)


def test_unknown_digest_algorithm_is_named() -> None:
    with pytest.raises(InvalidDigest, match="unsupported digest algorithm 'md5'"):
        Digest.parse("md5:" + "a" * 32)


def test_locations() -> None:
    assert parse_location("oci:/tmp/l:v1").tag == "v1"
    assert parse_location("oci:/tmp/l").tag is None
    loc = parse_location("docker-archive:/tmp/a.tar:app:1")
    assert (loc.path, str(loc.reference)) == ("/tmp/a.tar", "docker.io/library/app:1")
    assert parse_location("docker://127.0.0.1:5000/x:1").reference.registry == "127.0.0.1:5000"
    with pytest.raises(InvalidReference):
        parse_location("oci:")

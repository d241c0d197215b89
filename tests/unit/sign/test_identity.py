"""signedIdentity semantics, case by case as containers/image's prm_identity.go decides them."""

from __future__ import annotations

import pytest

from trustbuild.errors import UsageError, VerificationError
from trustbuild.sign.identity import SignedIdentity

D = "sha256:" + "a" * 64
D2 = "sha256:" + "b" * 64

# (identity, intended image reference, signed docker-reference, accepted?)
CASES = [
    # matchRepository: cosign's repository-only references included
    ("matchRepository", "r.example/ns/app:1", "r.example/ns/app", True),
    ("matchRepository", "r.example/ns/app:1", "r.example/ns/app:2", True),
    ("matchRepository", f"r.example/ns/app@{D}", "r.example/ns/app:2", True),
    ("matchRepository", "r.example/ns/app:1", "r.example/ns/other", False),
    ("matchRepository", "busybox:1", "docker.io/library/busybox", True),  # normalised
    # matchRepoDigestOrExact (containers/image's default)
    ("matchRepoDigestOrExact", "r.example/ns/app:1", "r.example/ns/app:1", True),
    ("matchRepoDigestOrExact", "r.example/ns/app:1", "r.example/ns/app:2", False),
    ("matchRepoDigestOrExact", "r.example/ns/app:1", "r.example/ns/app", False),  # cosign's
    ("matchRepoDigestOrExact", f"r.example/ns/app@{D}", "r.example/ns/app:7", True),
    ("matchRepoDigestOrExact", f"r.example/ns/app@{D}", f"r.example/ns/app@{D2}", True),
    ("matchRepoDigestOrExact", f"r.example/ns/app@{D}", "r.example/ns/app", False),
    ("matchRepoDigestOrExact", f"r.example/ns/app@{D}", "r.example/other:7", False),
    ("matchRepoDigestOrExact", "busybox", "docker.io/library/busybox:latest", True),
    # matchExact
    ("matchExact", "r.example/ns/app:1", "r.example/ns/app:1", True),
    ("matchExact", f"r.example/ns/app@{D}", f"r.example/ns/app@{D}", True),
    ("matchExact", f"r.example/ns/app@{D}", "r.example/ns/app:1", False),
    # exactReference / exactRepository ignore the image's own reference
    ('{"type":"exactReference","dockerReference":"s.example/app:v2"}', "r.example/x:1",
     "s.example/app:v2", True),
    ('{"type":"exactReference","dockerReference":"s.example/app:v2"}', "r.example/x:1",
     "s.example/app:v3", False),
    ("exactRepository:s.example/app", "r.example/x:1", "s.example/app", True),
    ("exactRepository:s.example/app", "r.example/x:1", "s.example/app:any", True),
    ("exactRepository:s.example/app", "r.example/x:1", "s.example/other", False),
    # remapIdentity: prefix rewrite, then matchRepoDigestOrExact
    ("remapIdentity:mirror.example/team=r.example/team", "mirror.example/team/app:1",
     "r.example/team/app:1", True),
    ("remapIdentity:mirror.example/team=r.example/team", "mirror.example/team/app:1",
     "r.example/team/app:2", False),
    ("remapIdentity:mirror.example/team=r.example/team", f"mirror.example/team/app@{D}",
     "r.example/team/app:2", True),
    ("remapIdentity:mirror.example/team=r.example/team", "mirror.example/teamx/app:1",
     "r.example/teamx/app:1", False),  # not a path boundary: not remapped
    ("remapIdentity:mirror.example/team=r.example/team", "other.example/app:1",
     "other.example/app:1", True),  # not under the prefix: matchRepoDigestOrExact as is
    ("remapIdentity:mirror.example=r.example", "mirror.example/a/b:1", "r.example/a/b:1", True),
    ("remapIdentity:docker.io/library=r.example/lib", "busybox:1", "r.example/lib/busybox:1",
     True),
]


@pytest.mark.parametrize(("spec", "intended", "signed", "ok"), CASES)
def test_signed_identity_matches_like_containers_image(spec: str, intended: str, signed: str,
                                                       ok: bool) -> None:
    ident = SignedIdentity.parse(spec)
    if ok:
        ident.check(signed, intended=intended)
    else:
        with pytest.raises(VerificationError, match="docker-reference"):
            ident.check(signed, intended=intended)


def test_repository_only_signature_reason_points_at_match_repository() -> None:
    with pytest.raises(VerificationError, match="cosign signatures need matchRepository"):
        SignedIdentity.parse("matchRepoDigestOrExact").check("r.example/app",
                                                             intended="r.example/app:1")


@pytest.mark.parametrize(("spec", "message"), [
    ("matchSomething", "type is not one of"),
    ("exactReference", "expected exactReference:REF"),
    ("matchRepository:x", "expected matchRepository"),
    ("exactReference:r.example/app", "needs a tag or digest"),
    ("exactRepository:r.example/app:1", "without tag or digest"),
    ("remapIdentity:a.example", "expected remapIdentity:PREFIX=SIGNED_PREFIX"),
    ("remapIdentity:busybox=r.example/x", "prefix 'busybox' must be host"),
    ("remapIdentity:r.example/x:1=r.example/y", "prefix"),
    ('{"type":"exactRepository"}', "needs a non-empty string 'dockerRepository'"),
    ('{"type":"matchRepository","prefix":"x"}', "unknown field 'prefix'"),
    ("{nope", "not valid JSON"),
])
def test_bad_specs_are_one_line_usage_errors(spec: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        SignedIdentity.parse(spec)


def test_json_round_trip() -> None:
    obj = {"type": "remapIdentity", "prefix": "m.example/a", "signedPrefix": "r.example/a"}
    assert SignedIdentity.from_json(obj).to_json() == obj

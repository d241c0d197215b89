"""Repository globs (``spec.deploy.allowedRepositories``) in the dialects of each target.

trustbuild's glob is on ``host/repo``: ``*`` stays within one path segment, ``**`` crosses
segments, ``?`` is one character (see :func:`trustbuild.policy.model.repository_matches`).
A Pod names images as written (``nginx``, ``acme/app:1``, ``host/repo@sha256:...``), so the
regular expressions here accept Docker's short forms for ``docker.io`` patterns and an optional
tag and digest. The expressions use only character classes (no backslashes, no quotes) so they
can be embedded in CEL and JMESPath string literals unchanged.
"""

from __future__ import annotations

from trustbuild.errors import PolicyError

__all__ = ["image_regex", "kyverno_references", "policy_controller_globs", "DIGEST_RX",
           "POD_IMAGE_LISTS"]

DIGEST_RX = "@sha256:[a-f0-9]{64}"
_TAG_RX = "(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?"
_ALLOWED = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_/:*?.[]")
_DOCKER_HOSTS = "(?:docker[.]io|index[.]docker[.]io|registry-1[.]docker[.]io)/"

#: The Pod spec fields that hold containers, in the order the webhook reports them.
POD_IMAGE_LISTS = ("initContainers", "containers", "ephemeralContainers")


def _check(pattern: str) -> None:
    bad = sorted(set(pattern) - _ALLOWED)
    if bad or not pattern:
        raise PolicyError(f"spec.deploy.allowedRepositories: {pattern!r}: unsupported "
                          f"characters {''.join(bad)!r} (use host/repo with * ** ?)")
    if "[" in pattern or "]" in pattern:
        raise PolicyError(f"spec.deploy.allowedRepositories: {pattern!r}: character classes "
                          "are not supported in cluster bundles (use * ** ?)")


def _glob_rx(glob: str, *, first_segment_bare: bool = False) -> str:
    out = []
    i = 0
    first = first_segment_bare
    while i < len(glob):
        c = glob[i]
        if glob.startswith("**", i):
            out.append("[^/.:@]*(?:/[^@]*)?" if first else "[^@]*")
            i += 2
            continue
        if c == "*":
            out.append("[^/.:@]*" if first else "[^/@]*")
        elif c == "?":
            out.append("[^/.:@]" if first else "[^/@]")
        elif c == ".":
            out.append("[.]")
        elif c == "/":
            first = False
            out.append("/")
        else:
            out.append(c)
        i += 1
    return "".join(out)


def _name_alternatives(pattern: str) -> list[str]:
    if not pattern.startswith("docker.io/"):
        return [_glob_rx(pattern)]
    rest = pattern[len("docker.io/"):]
    alts = [_DOCKER_HOSTS + _glob_rx(rest)]
    if rest.startswith("library/"):
        alts.append(_glob_rx(rest[len("library/"):], first_segment_bare=True))
    head = rest.split("/", 1)[0]
    if "/" in rest and not any(ch in head for ch in ".:") and head != "localhost":
        alts.append(_glob_rx(rest, first_segment_bare=True))
    return alts


def image_regex(patterns: tuple[str, ...] | list[str], *, require_digest: bool = False) -> str:
    """An anchored RE2 regex matching image strings whose repository one glob allows."""
    names: list[str] = []
    for p in patterns:
        _check(p)
        names.extend(_name_alternatives(p))
    digest = DIGEST_RX if require_digest else f"(?:{DIGEST_RX})?"
    return f"^(?:{'|'.join(names)}){_TAG_RX}{digest}$"


def kyverno_references(patterns: tuple[str, ...] | list[str]) -> list[str]:
    """Kyverno ``imageReferences`` (its ``*`` crosses ``/``; the tag/digest must be covered).

    Kyverno matches the normalised image (``docker.io/library/nginx:1``), so patterns stay in
    their ``docker.io`` form. A pattern widened from ``*`` to Kyverno's ``*`` selects more images
    for verification, never fewer.
    """
    out: list[str] = []
    for p in patterns:
        _check(p)
        k = p.replace("**", "*")
        refs = [k] if k.endswith("*") else [f"{k}:*", f"{k}@*"]
        for r in refs:
            if r not in out:
                out.append(r)
    return out


def policy_controller_globs(patterns: tuple[str, ...] | list[str]) -> list[str]:
    """policy-controller ``images[].glob`` (Docker Hub is spelled ``index.docker.io`` there)."""
    out: list[str] = []
    for p in patterns:
        _check(p)
        g = "index.docker.io/" + p[len("docker.io/"):] if p.startswith("docker.io/") else p
        if g not in out:
            out.append(g)
    return out

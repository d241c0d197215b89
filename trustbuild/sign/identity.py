"""Which signed identities (a payload's ``docker-reference``) an image accepts: containers/image's
``signedIdentity`` (``containers-policy.json(5)``), with its exact semantics.

=========================  ===================================================================
``matchRepository``        the signed reference names the image's repository (cosign's default;
                           what trustbuild has always checked)
``matchRepoDigestOrExact`` containers/image's default: when the image is given by tag, the
                           signature must name exactly that ``repo:tag``; by digest, the repository
                           must match. A repository-only signature (cosign's) never matches.
``matchExact``             the signed reference is exactly the image reference (tag or digest)
``exactReference``         the signed reference is exactly ``dockerReference`` (with a tag or
                           digest), whatever the image reference
``exactRepository``        the signed reference's repository is ``dockerRepository``
``remapIdentity``          when the image reference starts with ``prefix`` (host[:port], a
                           namespace or a repository, fully expanded), it is rewritten to
                           ``signedPrefix`` first; then ``matchRepoDigestOrExact``
=========================  ===================================================================

Example::

    ident = SignedIdentity.parse("remapIdentity:mirror.example/team=registry.example/team")
    ident.check("registry.example/team/app:1", intended="mirror.example/team/app:1")  # passes
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from trustbuild._internal.jsonload import load_object
from trustbuild.errors import InvalidReference, UsageError, VerificationError
from trustbuild.oci.reference import Reference

__all__ = ["SignedIdentity", "IDENTITY_TYPES", "MATCH_REPOSITORY"]

IDENTITY_TYPES = ("matchExact", "matchRepoDigestOrExact", "matchRepository", "exactReference",
                  "exactRepository", "remapIdentity")
_FIELDS: dict[str, tuple[str, ...]] = {
    "matchExact": (), "matchRepoDigestOrExact": (), "matchRepository": (),
    "exactReference": ("dockerReference",), "exactRepository": ("dockerRepository",),
    "remapIdentity": ("prefix", "signedPrefix"),
}
_MAX_JSON = 64 * 1024  # a --signed-identity or policy identity object
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_NAME = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")


def _named(text: str, what: str) -> tuple[Reference, bool]:
    """(normalised reference, name_only): name_only when ``text`` has neither tag nor digest."""
    try:
        ref = Reference.parse(text)
    except InvalidReference as exc:
        raise VerificationError(f"{what} {text!r} is not a valid reference ({exc})") from None
    last = text.split("@", 1)[0].rsplit("/", 1)[-1]
    return ref, "@" not in text and ":" not in last


def _valid_prefix(value: str) -> bool:
    """containers/image's remap prefixes: host[:port] or host[:port]/namespace.../repo, no tag."""
    host, _, path = value.partition("/")
    if not ("." in host or ":" in host or host == "localhost" or host.startswith("[")):
        return False
    try:
        if Reference.parse(f"{host}/x").registry != host:
            return False
    except InvalidReference:
        return False
    return not path or _NAME.fullmatch(path) is not None


def _prefix_matches(ref: str, prefix: str) -> bool:
    """``refMatchesPrefix``: a prefix ending at a path, tag or digest boundary."""
    if len(ref) < len(prefix):
        return False
    if len(ref) == len(prefix):
        return ref == prefix
    return ref.startswith(prefix) and ref[len(prefix)] in "/:@"


@dataclass(frozen=True)
class SignedIdentity:
    """One ``signedIdentity`` requirement (see the module docstring)."""

    type: str = "matchRepository"
    docker_reference: str | None = None
    docker_repository: str | None = None
    prefix: str | None = None
    signed_prefix: str | None = None

    def __post_init__(self) -> None:
        if self.type not in IDENTITY_TYPES:
            raise UsageError(f"signedIdentity type {self.type!r} is not one of "
                             f"{', '.join(IDENTITY_TYPES)}")
        if self.type == "exactReference":
            ref = self.docker_reference or ""
            try:
                _r, name_only = _named(ref, "dockerReference")
            except VerificationError as exc:
                raise UsageError(f"signedIdentity exactReference: {exc}") from None
            if name_only:
                raise UsageError(f"signedIdentity exactReference: {ref!r} needs a tag or digest "
                                 "(use exactRepository for a repository)")
        if self.type == "exactRepository":
            try:
                _r, name_only = _named(self.docker_repository or "", "dockerRepository")
            except VerificationError as exc:
                raise UsageError(f"signedIdentity exactRepository: {exc}") from None
            if not name_only:
                raise UsageError(f"signedIdentity exactRepository: {self.docker_repository!r} "
                                 "must be a repository without tag or digest")
        if self.type == "remapIdentity":
            for field, value in (("prefix", self.prefix), ("signedPrefix", self.signed_prefix)):
                if not value or not _valid_prefix(value):
                    raise UsageError(f"signedIdentity remapIdentity: {field} {value!r} must be "
                                     "host[:port] or host[:port]/namespace[/...]/repo, fully "
                                     "expanded (docker.io/library/busybox, not busybox)")

    @classmethod
    def from_json(cls, obj: object, *, where: str = "signedIdentity") -> SignedIdentity:
        """From containers-policy.json's object form; UsageError naming the defect."""
        if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
            raise UsageError(f"{where}: expected an object with a \"type\"")
        typ = obj["type"]
        if typ not in _FIELDS:
            raise UsageError(f"{where}: type {typ!r} is not one of {', '.join(IDENTITY_TYPES)}")
        allowed = set(_FIELDS[typ]) | {"type"}
        extra = sorted(set(obj) - allowed)
        if extra:
            raise UsageError(f"{where}: unknown field {extra[0]!r} for type {typ}")
        for f in _FIELDS[typ]:
            if not isinstance(obj.get(f), str) or not obj[f]:
                raise UsageError(f"{where}: type {typ} needs a non-empty string {f!r}")
        return cls(typ, obj.get("dockerReference"), obj.get("dockerRepository"),
                   obj.get("prefix"), obj.get("signedPrefix"))

    @classmethod
    def parse(cls, text: str) -> SignedIdentity:
        """JSON (``{"type": ...}``) or the short form ``TYPE``, ``exactReference:REF``,
        ``exactRepository:REPO``, ``remapIdentity:PREFIX=SIGNED_PREFIX``."""
        text = text.strip()
        if text.startswith("{"):
            obj = load_object(text, what="--signed-identity", error=UsageError,
                              max_bytes=_MAX_JSON)
            return cls.from_json(obj, where="--signed-identity")
        typ, _, arg = text.partition(":")
        if typ not in _FIELDS:
            raise UsageError(f"--signed-identity {text!r}: type is not one of "
                             f"{', '.join(IDENTITY_TYPES)}")
        if bool(arg) != bool(_FIELDS[typ]):
            form = {"exactReference": "exactReference:REF",
                    "exactRepository": "exactRepository:REPO",
                    "remapIdentity": "remapIdentity:PREFIX=SIGNED_PREFIX"}.get(typ, typ)
            raise UsageError(f"--signed-identity {text!r}: expected {form}")
        if typ == "exactReference":
            return cls(typ, docker_reference=arg)
        if typ == "exactRepository":
            return cls(typ, docker_repository=arg)
        if typ == "remapIdentity":
            prefix, eq, signed = arg.partition("=")
            if not eq:
                raise UsageError(f"--signed-identity {text!r}: expected "
                                 "remapIdentity:PREFIX=SIGNED_PREFIX")
            return cls(typ, prefix=prefix, signed_prefix=signed)
        return cls(typ)

    def to_json(self) -> dict[str, str]:
        """The containers-policy.json object."""
        out = {"type": self.type}
        for f, v in (("dockerReference", self.docker_reference),
                     ("dockerRepository", self.docker_repository),
                     ("prefix", self.prefix), ("signedPrefix", self.signed_prefix)):
            if v is not None:
                out[f] = v
        return out

    @property
    def needs_image_reference(self) -> bool:
        """False for the types that ignore the image's own reference."""
        return self.type not in ("exactReference", "exactRepository")

    def check(self, signed: str, *, intended: str | None) -> None:
        """Raise VerificationError (the reason) unless ``signed`` is acceptable for ``intended``.

        ``intended`` is the image reference as given (tag or digest); it may be None only for
        exactReference / exactRepository.
        """
        sig, sig_name_only = _named(signed, "signed docker-reference")
        if self.type == "exactReference":
            assert self.docker_reference is not None
            want, _ = _named(self.docker_reference, "dockerReference")
            if sig_name_only or str(sig) != str(want):
                raise VerificationError(f"docker-reference {signed!r} is not {str(want)!r} "
                                        "(signedIdentity exactReference)")
            return
        if self.type == "exactRepository":
            assert self.docker_repository is not None
            want, _ = _named(self.docker_repository, "dockerRepository")
            if sig.name != want.name:
                raise VerificationError(f"docker-reference {signed!r} is not in {want.name!r} "
                                        "(signedIdentity exactRepository)")
            return
        if intended is None:
            raise VerificationError(f"signedIdentity {self.type} needs the image's reference "
                                    "(pass --docker-reference REF)")
        image, _ = _named(intended, "image reference")
        if self.type == "remapIdentity":
            assert self.prefix is not None and self.signed_prefix is not None
            text = str(image)
            if _prefix_matches(text, self.prefix):
                image, _ = _named(self.signed_prefix + text[len(self.prefix):],
                                  "remapped image reference")
        if self.type == "matchRepository":
            ok = sig.name == image.name
        elif self.type == "matchExact":
            ok = not sig_name_only and str(sig) == str(image)
        elif image.tag is not None:  # matchRepoDigestOrExact, remapIdentity: by tag, exact
            ok = not sig_name_only and str(sig) == str(image)
        else:  # by digest: the repository (the digest itself is checked against the payload)
            ok = not sig_name_only and sig.name == image.name
        if not ok:
            raise VerificationError(self._mismatch(signed, image, sig_name_only))

    def _mismatch(self, signed: str, image: Reference, name_only: bool) -> str:
        if self.type == "matchRepository":
            return (f"docker-reference {signed!r} is not the image's repository "
                    f"{image.name!r}")
        what = f"{self.type}" + (f" {self.prefix}={self.signed_prefix}"
                                 if self.type == "remapIdentity" else "")
        if name_only:
            return (f"docker-reference {signed!r} names no tag or digest, which signedIdentity "
                    f"{what} never accepts (cosign signatures need matchRepository)")
        return f"docker-reference {signed!r} does not match {str(image)!r} (signedIdentity {what})"


MATCH_REPOSITORY = SignedIdentity("matchRepository")

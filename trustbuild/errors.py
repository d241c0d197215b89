"""The one error tree: every failure a user can cause or meet is a TrustbuildError.

The CLI (``trustbuild.cli.main``) catches TrustbuildError once, prints ``str(err)`` as one line
and exits with ``err.exit_code``; with ``-v`` it lets the error propagate, so the traceback
(with the chain of causes) is shown.
"""

from __future__ import annotations

__all__ = [
    "TrustbuildError",
    "UsageError",
    "InvalidReference",
    "InvalidDigest",
    "InvalidManifest",
    "DigestMismatch",
    "RegistryError",
    "NotFound",
    "StoreError",
    "BuildError",
    "ContextError",
    "DockerfileError",
    "SandboxError",
    "UnsafePath",
    "SigningError",
    "VerificationError",
    "AttestationError",
    "PolicyError",
    "PolicyViolation",
]


class TrustbuildError(Exception):
    """Base of every error trustbuild reports to a user."""

    exit_code = 1


class UsageError(TrustbuildError):
    """Bad command-line usage (exit 2)."""

    exit_code = 2


class InvalidReference(TrustbuildError):
    """An image reference or transport string that cannot be parsed."""


class InvalidDigest(TrustbuildError):
    """A digest string that is malformed or uses an unsupported algorithm."""


class InvalidManifest(TrustbuildError):
    """A manifest, index or config that is not valid JSON of the expected shape."""


class DigestMismatch(TrustbuildError):
    """Content whose digest or size is not what its descriptor promised."""


class RegistryError(TrustbuildError):
    """A failed registry request: method, redacted URL, status and the registry's message."""

    def __init__(
        self,
        message: str,
        *,
        method: str = "",
        url: str = "",
        status: int | None = None,
        temporary: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.method = method
        self.url = url
        self.status = status
        self.temporary = temporary
        self.retry_after = retry_after  # seconds the registry asked to wait (Retry-After)


class NotFound(TrustbuildError):
    """A manifest, blob, tag or file that does not exist."""


class StoreError(TrustbuildError):
    """A local store (OCI layout, docker-archive) that cannot be read or written."""


class BuildError(TrustbuildError):
    """A build that failed."""


class ContextError(BuildError):
    """A build context that cannot be opened, read or extracted."""


class DockerfileError(BuildError):
    """A Dockerfile problem, reported as ``Dockerfile:LINE INSTRUCTION: message``."""

    def __init__(self, message: str, *, path: str = "Dockerfile", line: int | None = None,
                 instruction: str = "") -> None:
        where = f"{path}:{line}" if line is not None else path
        what = f" {instruction}" if instruction else ""
        super().__init__(f"{where}{what}: {message}")
        self.path = path
        self.line = line
        self.instruction = instruction


class SandboxError(BuildError):
    """A RUN step that could not be set up or that failed."""


class UnsafePath(BuildError):
    """A path resolved inside a root (an image rootfs, the build context) that would leave it,
    or whose symlink chain is too long to follow (``trustbuild._internal.inroot``).

    ``kind`` is ``"above"`` (``..`` above a root that forbids it), ``"absolute"`` (an absolute
    symlink where they are forbidden), ``"symlink"`` (any symlink, where none may be followed)
    or ``"loop"`` (more than ``MAX_SYMLINKS`` links);
    ``path`` is the path asked for, ``link``/``target`` the offending symlink (root-relative).
    """

    def __init__(self, message: str, *, kind: str, path: str, link: str = "",
                 target: str = "") -> None:
        super().__init__(message)
        self.kind = kind
        self.path = path
        self.link = link
        self.target = target


class SigningError(TrustbuildError):
    """Keys that cannot be read or a signature that cannot be made or stored."""


class VerificationError(TrustbuildError):
    """A signature or attestation that does not verify."""


class AttestationError(TrustbuildError):
    """An attestation that cannot be made, parsed or stored."""


class PolicyError(TrustbuildError):
    """A policy file that is invalid (names the field path)."""


class PolicyViolation(TrustbuildError):
    """The gate or the deploy check denied."""

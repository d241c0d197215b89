"""One implementation of each security-relevant job (issue 14): a second copy fails here.

- symlink resolution inside a root: ``_internal/inroot.py`` (the only symlink hop limit);
- tar reading for extraction: ``oci/extract.py`` (``oci/archive.py`` reads a docker-archive as
  a store, it extracts nothing);
- USER lookups in /etc/passwd and /etc/group: ``_internal/users.py``;
- picking a platform's manifest from an index: ``oci/image.py``;
- the default PATH of a step and of a new image: ``sandbox/paths.py`` ``DEFAULT_PATH``;
- DSSE's pre-authentication encoding: ``sign/bundle.py`` ``pae`` (``attest/dsse.py``'s
  ``Envelope.pae`` calls it);
- the redaction marker ``<redacted>``: ``_internal/secrets.py`` ``REDACTED`` (URLs, headers,
  build args, env, git URLs and masked step output all use it);
- the keyless policy and verification engine: ``sign/trust.py`` ``KeylessPolicy``,
  ``sign/keyless_verify.py`` ``verify_keyless``;
- the HTTP client (pools, TLS, proxies, redirects): ``registry/httpclient.py`` on
  ``http.client``; no ``requests``, ``urllib3``, ``urllib.request`` or other ``http.client``
  connections (sigstore brings its own client for Fulcio and Rekor).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[3] / "trustbuild"


def _files_matching(pattern: str) -> set[str]:
    rx = re.compile(pattern, re.M)
    return {str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py") if rx.search(p.read_text())}


def test_one_in_root_resolver() -> None:
    assert _files_matching(r"^\s*_?MAX_(SYM)?LINKS\s*=") == {"_internal/inroot.py"}
    assert _files_matching(r"def (secure_join|resolve_in_root)\(") <= {
        "_internal/inroot.py", "builder/rootfs.py"}  # secure_join: a one-line wrapper


def test_one_http_client() -> None:
    assert _files_matching(r"^\s*(import (requests|urllib3)|from (requests|urllib3)\b|"
                           r"import urllib\.request|"
                           r"from urllib(\.request)? import (request|urlopen))") == set()
    assert _files_matching(r"\bHTTPS?Connection\b") == {"registry/httpclient.py"}


def test_one_tar_extractor() -> None:
    assert _files_matching(r"tarfile\.open\([^)]*[\"']r[|:]") <= {
        "oci/extract.py", "oci/archive.py"}
    assert _files_matching(r"\.extractfile\(") == {"oci/extract.py"}


def _code_constants(path: Path) -> list[str | bytes]:
    """String and bytes constants of ``path``'s code (docstrings and other bare strings, and
    the names listed in ``__all__``, left out)."""
    tree = ast.parse(path.read_text())
    skip = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Expr)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            skip.update(id(n) for n in ast.walk(node.value))
    return [n.value for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str | bytes)
            and id(n) not in skip]


def _code_strings(path: Path) -> list[str]:
    """String constants of ``path``'s code (docstrings and other bare strings left out)."""
    return [s for s in _code_constants(path) if isinstance(s, str)]


def _files_with_constant(test: Callable[[str], bool]) -> set[str]:
    """Files with a code constant (str, or bytes read as latin-1) ``test`` accepts."""
    return {str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
            if any(test(c.decode("latin-1") if isinstance(c, bytes) else c)
                   for c in _code_constants(p))}


def test_one_user_resolver() -> None:
    readers = {str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
               if any(s.startswith("/etc/") and s.rstrip("/") in ("/etc", "/etc/passwd",
                                                                   "/etc/group")
                      for s in _code_strings(p))}
    assert readers == {"_internal/users.py"}


def test_one_platform_picker() -> None:
    assert _files_matching(r"\.select\((platform|want|plat)") == {"oci/image.py"}


def test_one_default_path() -> None:
    assert _files_matching(r"^\s*DEFAULT_PATH\s*(:[^=\n]*)?=") == {"sandbox/paths.py"}
    assert _files_with_constant(lambda s: "/usr/local/sbin:/usr/local/bin" in s) == {
        "sandbox/paths.py"}


def test_one_pae() -> None:
    assert _files_matching(r"^def pae\(") == {"sign/bundle.py"}
    assert _files_matching(r"^[ \t]+def pae\(") <= {"attest/dsse.py"}  # Envelope.pae: a wrapper
    assert _files_with_constant(lambda s: s.startswith("DSSEv1")) == {"sign/bundle.py"}


def test_one_redaction_marker() -> None:
    assert _files_matching(r"^\s*_?REDACTED\s*(:[^=\n]*)?=") == {"_internal/secrets.py"}
    assert _files_with_constant(lambda s: "<redacted>" in s.lower()) == {"_internal/secrets.py"}
    assert _files_with_constant(lambda s: s == "REDACTED" or "***" in s) == set()


def test_one_keyless_policy_and_engine() -> None:
    assert _files_matching(r"^\s*class KeylessPolicy\b") == {"sign/trust.py"}
    assert _files_matching(r"def verify_keyless\(") == {"sign/keyless_verify.py"}

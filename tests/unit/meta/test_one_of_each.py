"""One implementation of each security-relevant job (issue 14): a second copy fails here.

- symlink resolution inside a root: ``_internal/inroot.py`` (the only symlink hop limit);
- tar reading for extraction: ``oci/extract.py`` (``oci/archive.py`` reads a docker-archive as
  a store, it extracts nothing);
- USER lookups in /etc/passwd and /etc/group: ``_internal/users.py``;
- picking a platform's manifest from an index: ``oci/image.py``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[3] / "trustbuild"


def _files_matching(pattern: str) -> set[str]:
    rx = re.compile(pattern, re.M)
    return {str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py") if rx.search(p.read_text())}


def test_one_in_root_resolver() -> None:
    assert _files_matching(r"^\s*_?MAX_(SYM)?LINKS\s*=") == {"_internal/inroot.py"}
    assert _files_matching(r"def (secure_join|resolve_in_root)\(") <= {
        "_internal/inroot.py", "builder/rootfs.py"}  # secure_join: a one-line wrapper


def test_one_tar_extractor() -> None:
    assert _files_matching(r"tarfile\.open\([^)]*[\"']r[|:]") <= {
        "oci/extract.py", "oci/archive.py"}
    assert _files_matching(r"\.extractfile\(") == {"oci/extract.py"}


def _code_strings(path: Path) -> list[str]:
    """String constants of ``path``'s code (docstrings and other bare strings left out)."""
    tree = ast.parse(path.read_text())
    bare = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Expr)}
    return [n.value for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in bare]


def test_one_user_resolver() -> None:
    readers = {str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
               if any(s.startswith("/etc/") and s.rstrip("/") in ("/etc", "/etc/passwd",
                                                                   "/etc/group")
                      for s in _code_strings(p))}
    assert readers == {"_internal/users.py"}


def test_one_platform_picker() -> None:
    assert _files_matching(r"\.select\((platform|want|plat)") == {"oci/image.py"}

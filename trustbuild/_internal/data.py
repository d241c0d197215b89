"""Files trustbuild ships besides its code: seccomp profiles and example policies.

The repository's top-level ``seccomp/`` and ``policies/`` are the source of truth. A wheel
carries copies under ``trustbuild/_data/`` (setup.py copies them in at build time); a
checkout (``pip install -e .`` or ``PYTHONPATH``) reads them where they are. Example::

    from trustbuild._internal.data import data_dirs, find_data
    find_data("seccomp", "build-default.json")   # Path to the shipped profile
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

__all__ = ["DataKind", "DATA_KINDS", "data_dirs", "find_data", "shipped_names"]

DataKind = Literal["seccomp", "policies"]
DATA_KINDS: tuple[DataKind, ...] = ("seccomp", "policies")
_ENV = {"seccomp": "TRUSTBUILD_SECCOMP_DIR", "policies": "TRUSTBUILD_POLICY_DIR"}
_PKG = Path(__file__).resolve().parents[1]  # .../trustbuild


def _checkout_root() -> Path | None:
    """The source checkout this package runs from, if it is one (has trustbuild's pyproject)."""
    root = _PKG.parent
    try:
        head = (root / "pyproject.toml").read_text(encoding="utf-8", errors="replace")[:4096]
    except OSError:
        return None
    return root if 'name = "trustbuild"' in head else None


def data_dirs(kind: DataKind) -> list[Path]:
    """Directories searched for ``kind``, first match wins.

    ``$TRUSTBUILD_SECCOMP_DIR`` / ``$TRUSTBUILD_POLICY_DIR``, then the package data of an
    installed wheel, then the checkout's top-level directory, then ``/usr/share/trustbuild``.
    """
    dirs: list[Path] = []
    env = os.environ.get(_ENV[kind])
    if env:
        dirs.append(Path(env))
    dirs.append(_PKG / "_data" / kind)
    root = _checkout_root()
    if root is not None:
        dirs.append(root / kind)
    dirs.append(Path("/usr/share/trustbuild") / kind)
    return dirs


def find_data(kind: DataKind, name: str) -> Path | None:
    """The first existing file ``name`` (a plain file name, no path) in :func:`data_dirs`."""
    if not name or "/" in name or name in (".", ".."):
        return None
    for d in data_dirs(kind):
        cand = d / name
        if cand.is_file():
            return cand
    return None


def shipped_names(kind: DataKind, suffix: str) -> list[str]:
    """Names (without ``suffix``) of the files of ``kind`` found in any data directory."""
    names: set[str] = set()
    for d in data_dirs(kind):
        if d.is_dir():
            names.update(p.name[: -len(suffix)] for p in d.glob(f"*{suffix}") if p.is_file())
    return sorted(names)

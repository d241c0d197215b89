"""Cache keys from inputs (docs/cache.md): what changes a COPY source digest and what does not."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from trustbuild.builder.cachekey import SourceHasher, chain_step, root_key, step_key
from trustbuild.builder.context import open_context
from trustbuild.oci.descriptor import Platform


def _tree(root: Path) -> Path:
    (root / "src" / "sub").mkdir(parents=True)
    (root / "src" / "a.txt").write_text("a\n")
    (root / "src" / "sub" / "run.sh").write_text("#!/bin/sh\n")
    (root / "src" / "sub" / "run.sh").chmod(0o755)
    os.symlink("a.txt", root / "src" / "link")
    return root


def _digest(root: Path, rel: str = "src") -> str:
    with open_context(str(root)) as ctx:
        return SourceHasher(ctx).digest(root / rel)


def test_source_digest_ignores_mtimes_and_location(tmp_path: Path) -> None:
    one = _tree(tmp_path / "one")
    two = tmp_path / "elsewhere" / "two"
    shutil.copytree(one, two, symlinks=True)
    for dirpath, dirnames, filenames in os.walk(two):
        for name in dirnames + filenames:
            os.utime(os.path.join(dirpath, name), (5, 5), follow_symlinks=False)
    assert _digest(one) == _digest(two)
    assert _digest(one, "src/a.txt") == _digest(two, "src/a.txt")


def test_source_digest_sees_content_mode_names_and_links(tmp_path: Path) -> None:
    root = _tree(tmp_path / "ctx")
    before = _digest(root)
    (root / "src" / "a.txt").write_text("b\n")
    content = _digest(root)
    (root / "src" / "sub" / "run.sh").chmod(0o644)
    mode = _digest(root)
    (root / "src" / "sub" / "run.sh").rename(root / "src" / "sub" / "start.sh")
    name = _digest(root)
    (root / "src" / "link").unlink()
    os.symlink("sub", root / "src" / "link")
    link = _digest(root)
    assert len({before, content, mode, name, link}) == 5


def test_source_digest_follows_dockerignore(tmp_path: Path) -> None:
    root = _tree(tmp_path / "ctx")
    (root / ".dockerignore").write_text("src/*.log\n")
    (root / "src" / "x.log").write_text("1\n")
    before = _digest(root)
    (root / "src" / "x.log").write_text("2\n")
    assert _digest(root) == before
    (root / "src" / "y.txt").write_text("new\n")
    assert _digest(root) != before


def test_keys_chain_and_depend_on_settings() -> None:
    plat = Platform("linux", "amd64")
    root = root_key(base="sha256:" + "a" * 64, platform=plat, settings={"compression": "gzip"})
    assert root != root_key(base="sha256:" + "a" * 64, platform=plat,
                            settings={"compression": "zstd"})
    assert root != root_key(base="sha256:" + "a" * 64, platform=Platform("linux", "arm64"),
                            settings={"compression": "gzip"})
    one = step_key(root, "COPY", {"dest": "/a", "sources": [["context", "a", "sha256:1"]]})
    assert one == step_key(root, "COPY", {"sources": [["context", "a", "sha256:1"]],
                                          "dest": "/a"})  # JSON with sorted keys
    assert one != step_key(chain_step(root, "ENV", "ENV A=1"), "COPY",
                           {"dest": "/a", "sources": [["context", "a", "sha256:1"]]})

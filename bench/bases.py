"""Base images for the benchmark: a loopback registry, the busybox base and the Debian base.

Both bases are built by tools other than trustbuild so a trustbuild bug cannot hide in them:
busybox with the test suite's plain-``tarfile`` writer (``tests/fixtures/images.py``) copied in
by skopeo; Debian with ``debootstrap --variant=minbase bookworm`` tarred and turned into an image
by buildah (``FROM scratch`` + ``ADD rootfs.tar /``) in a private storage root.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / "work"
ROOTFS_TAR = WORK / "debian-bookworm-minbase.tar"
TRASH = WORK / "trash"
MIRROR = "http://deb.debian.org/debian"

__all__ = ["ROOT", "WORK", "ROOTFS_TAR", "registry", "push_busybox", "push_debian", "log",
           "discard", "emptying_trash"]


def log(msg: str) -> None:
    """Progress on stderr."""
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def _fixture(name: str) -> ModuleType:
    """Load ``tests/fixtures/<name>.py`` as a plain module (no pytest plugin machinery)."""
    path = ROOT / "tests" / "fixtures" / f"{name}.py"
    if str(ROOT / "tests") not in sys.path:
        sys.path.insert(0, str(ROOT / "tests"))  # the fixtures import each other as fixtures.*
    spec = importlib.util.spec_from_file_location(f"_bench_fixture_{name}", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {path}")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


@contextmanager
def registry() -> Iterator[Any]:
    """Debian's docker-registry on a free 127.0.0.1 port (``.host``), removed afterwards."""
    with _fixture("registry").run_registry() as reg:
        yield reg


def push_busybox(host: str) -> str:
    """Push the busybox base (Debian's busybox-static, applet symlinks) and return its ref."""
    ref = f"{host}/bench/busybox:1"
    images = _fixture("images")
    with tempfile.TemporaryDirectory(prefix="bench-busybox-", dir=WORK) as d:
        images.write_busybox_layout(Path(d), tag="1")
        subprocess.run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false", f"oci:{d}:1",
                        f"docker://{ref}"], check=True, timeout=300)
    return ref


def debian_rootfs_tar() -> Path:
    """The debootstrap minbase rootfs as a tarball, cached in bench/work across runs."""
    if ROOTFS_TAR.exists():
        return ROOTFS_TAR
    WORK.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="debootstrap-", dir=WORK))
    try:
        log("debootstrap --variant=minbase bookworm (once; cached in bench/work)")
        subprocess.run(["debootstrap", "--variant=minbase", "bookworm", str(tmp / "rootfs"),
                        MIRROR], check=True, stdout=subprocess.DEVNULL, timeout=1800)
        for deb in (tmp / "rootfs" / "var/cache/apt/archives").glob("*.deb"):
            deb.unlink()
        part = ROOTFS_TAR.with_suffix(".tar.part")
        subprocess.run(["tar", "--numeric-owner", "--xattrs", "-C", str(tmp / "rootfs"), "-cf",
                        str(part), "."], check=True)
        part.rename(ROOTFS_TAR)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return ROOTFS_TAR


def push_debian(host: str) -> str:
    """Build ``FROM scratch`` + ``ADD rootfs.tar /`` with buildah and push it; returns its ref."""
    ref = f"{host}/bench/debian:bookworm-minbase"
    tar = debian_rootfs_tar()
    store = Path(tempfile.mkdtemp(prefix="base-storage-", dir=WORK))
    try:
        ctx = store / "ctx"
        ctx.mkdir()
        shutil.copy(tar, ctx / "rootfs.tar")
        (ctx / "Dockerfile").write_text("FROM scratch\nADD rootfs.tar /\nCMD [\"bash\"]\n")
        flags = ["--root", str(store / "root"), "--runroot", str(store / "run"),
                 "--storage-driver", "overlay"]
        subprocess.run(["buildah", *flags, "bud", "--isolation", "chroot", "--tls-verify=false",
                        "-q", "-t", ref, str(ctx)], check=True, stdout=subprocess.DEVNULL,
                       timeout=900)
        subprocess.run(["buildah", *flags, "push", "-q", "--tls-verify=false", ref], check=True,
                       timeout=900)
        subprocess.run(["buildah", *flags, "rmi", "-a", "-f"], check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    finally:
        _clear_storage(store)
    return ref


def _clear_storage(path: Path) -> None:
    """Remove a buildah storage root (unmounting its overlay mounts first)."""
    clear_buildah_storage(path / "root", path / "run")
    discard(path)


def discard(path: Path) -> None:
    """Move ``path`` into bench/work/trash, deleted by :func:`empty_trash` when the run ends.

    Deleting a tree between measured builds is not free for the next one: on ext4 without a
    journal (this machine) the inode allocator skips inodes freed in the last 1-6 minutes and
    reads the inode table for each, so files created in those block groups cost ~1 ms each
    instead of ~30 us. Clearing a tool's storage with ``rm`` right before its cold build made
    that build pay for the harness's deletion (both tools, by how much depended on the order)."""
    if not path.exists() and not path.is_symlink():
        return
    TRASH.mkdir(parents=True, exist_ok=True)
    path.rename(TRASH / f"{path.name}-{uuid.uuid4().hex[:12]}")


@contextmanager
def emptying_trash() -> Iterator[None]:
    """Around a whole bench run: what :func:`discard` moved aside is deleted at its end."""
    try:
        yield
    finally:
        shutil.rmtree(TRASH, ignore_errors=True)


def clear_buildah_storage(root: Path, run: Path) -> None:
    """Unmount whatever is mounted under ``root``/``run`` and discard both."""
    for base in (root, run):
        if not base.exists():
            continue
        prefix = str(base.resolve()) + "/"
        mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
        for mp in sorted((m for m in mounts if m.startswith(prefix)), key=len, reverse=True):
            subprocess.run(["umount", "-l", mp], check=False, stderr=subprocess.DEVNULL)
        discard(base)

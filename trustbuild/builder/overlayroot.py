"""Stage filesystems as overlay mounts: layers unpacked once per machine, used read-only.

With a layer store (``--cache-dir``) each layer a stage needs is unpacked once into
``<store>/unpacked/<diff_id hex>/`` (OCI whiteouts turned into overlay whiteouts: a ``.wh.NAME``
entry becomes a 0/0 character device ``NAME``, ``.wh..wh..opq`` the ``trusted.overlay.opaque``
xattr of its directory) and the stage's rootfs is an overlay mount of those directories, with
an upper directory in the build's work dir: a write copies the file up, a lower directory is
never changed. ``FROM <earlier stage>`` mounts the earlier stage's filesystem (its upper and
lower directories) the same way instead of extracting every layer again.

Overlay needs root (``CAP_SYS_ADMIN``) and a kernel that mounts it here; when a mount fails
the builder extracts the layers into a plain directory as before. Builds hold a shared lock on
every unpacked layer they mount (``<store>/locks/unpacked-<hex>.lock``), so ``cache prune``
never removes one in use; ``unpacking-<hex>.lock`` makes a second build wait for the first
to finish unpacking a layer instead of unpacking it too.

Example::

    roots = OverlayRoots(work, layer_store)
    roots.mount(rootfs, [roots.unpacked(layer) for layer in reversed(layers)])   # top first
    ...
    roots.close()                                                  # unmounts everything
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from trustbuild._internal.topdir import fresh_name, mark_top_dir
from trustbuild.builder.config import LayerRef, ensure_local
from trustbuild.errors import BuildError, TrustbuildError
from trustbuild.oci.digest import Digest
from trustbuild.oci.extract import extract_layer
from trustbuild.sandbox.snapshot import _copy_meta

if TYPE_CHECKING:
    from trustbuild.builder.layerstore import LayerStore

__all__ = ["OverlayRoots", "OverlayUnavailable", "copy_up_hardlinks", "unpack_for_overlay"]

_WH = ".wh."
_OPAQUE = ".wh..wh..opq"
_MAX_LOWERS = 120  # well below the kernel's 500; the option string stays short (symlinks)


class OverlayUnavailable(TrustbuildError):
    """Overlay cannot be used here (not root, no overlayfs, a layer that cannot stand alone)."""


@dataclass
class _Mount:
    target: Path
    upper: Path
    lowers: list[Path]  # top first
    data: str  # the mount options, to mount it again after StageLayers.detach


def unpack_for_overlay(blob: Path, dest: Path, *, diff_id: str, what: str) -> int:
    """Extract one layer into the empty directory ``dest`` as an overlay lower directory;
    returns the bytes its files take (for ``cache prune --max-size``)."""
    extract_layer(blob, dest, diff_id=Digest.parse(diff_id) if diff_id else None, what=what,
                  whiteouts=False)
    size = 0
    for dirpath, dirnames, filenames in os.walk(dest, topdown=True):
        for name in filenames:
            with contextlib.suppress(OSError):
                size += os.lstat(os.path.join(dirpath, name)).st_size
        for name in [n for n in dirnames + filenames if n.startswith(_WH)]:
            path = os.path.join(dirpath, name)
            if name == _OPAQUE:
                os.unlink(path)
                os.setxattr(dirpath, "trusted.overlay.opaque", b"y", follow_symlinks=False)
            elif name.startswith(_WH + _WH):  # AUFS bookkeeping (.wh..wh.plnk, .wh..wh.aufs)
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path)
                else:
                    os.unlink(path)
            else:
                target = os.path.join(dirpath, name[len(_WH):])
                if os.path.lexists(target):
                    raise BuildError(f"{what}: {name} and the path it deletes are in one layer")
                os.unlink(path)
                os.mknod(target, stat.S_IFCHR | 0o600, os.makedev(0, 0))
            if name in dirnames:
                dirnames.remove(name)
    return size


def copy_up_hardlinks(root: Path) -> int:
    """Copy every file that has several names in the lower layers of the overlay ``root`` up
    once and link all its names to the copy; returns how many files were copied.

    The stage overlay has no inodes index (its lowers are shared with other mounts, and a
    later stage's overlay stacks on its upper), so a write through one name of a lower
    hardlink would copy only that name up and the other names would keep the old content.
    Done before the first step, it is not part of any layer; file and directory times,
    owners, modes and xattrs stay as they were."""
    groups: dict[tuple[int, int], list[str]] = {}
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
                groups.setdefault((st.st_dev, st.st_ino), []).append(path)
    copied = 0
    for names in groups.values():
        if len(names) < 2:  # its other names are shadowed by a higher layer
            continue
        names.sort()
        first = names[0]
        parents = {os.path.dirname(n): os.lstat(os.path.dirname(n)) for n in names}
        st = os.lstat(first)
        tmp = os.path.join(os.path.dirname(first), f".trustbuild-copy-up-{os.getpid()}")
        with open(first, "rb") as src, open(tmp, "xb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        _copy_meta(first, tmp, st)
        os.rename(tmp, first)
        for other in names[1:]:
            os.unlink(other)
            os.link(first, other)
        for parent, pst in parents.items():
            os.utime(parent, ns=(pst.st_atime_ns, pst.st_mtime_ns), follow_symlinks=False)
        copied += 1
    return copied


class OverlayRoots:
    """The overlay mounts of one build (unmounted by :meth:`close`)."""

    def __init__(self, work: Path, layer_store: LayerStore | None) -> None:
        self.work = work
        self.store = layer_store
        self.enabled = os.geteuid() == 0
        self.mounts: dict[Path, _Mount] = {}
        self.unpacked_now = 0  # layers this build unpacked (the rest were in the store)
        self._locks: list[int] = []
        self._n = 0
        self._tried: bool | None = None  # usable(): None until tried
        self._held: dict[str, Path] = {}  # diff_id hex -> unpacked dir this build has locked

    # ------------------------------------------------------------------ unpacked layers
    def unpacked(self, layer: LayerRef) -> Path:
        """The layer unpacked in the store (once per machine), locked for this build.

        Two locks per entry: ``unpacking-<hex>`` (exclusive, held only while one build unpacks
        it) and ``unpacked-<hex>`` (shared, held by every build that has it mounted, until
        :meth:`close`; ``cache prune`` removes an entry only when it gets it exclusively)."""
        if self.store is None or not layer.diff_id.startswith("sha256:"):
            raise OverlayUnavailable("no layer store, or a layer without a sha256 diff_id")
        hex_ = layer.diff_id.split(":", 1)[1]
        if hex_ in self._held:
            return self._held[hex_]
        root = self.store.root / "unpacked"
        root.mkdir(mode=0o700, exist_ok=True)  # setuid files of images: for root's eyes only
        dest = root / hex_
        for _ in range(10):  # a prune may remove the entry between unpacking and locking it
            if not (dest / ".complete").exists():
                self._unpack(layer, root, dest)
            use = os.open(self.store.locks / f"unpacked-{hex_}.lock",
                          os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(use, fcntl.LOCK_SH)
            if (dest / ".complete").exists():
                os.utime(dest)  # last use, for prune
                self._locks.append(use)
                self._held[hex_] = dest / "fs"
                return dest / "fs"
            os.close(use)
        raise OverlayUnavailable(f"layer {layer.descriptor.digest}: removed while in use")

    def _unpack(self, layer: LayerRef, root: Path, dest: Path) -> None:
        hex_ = dest.name
        lock = os.open(self.store.locks / f"unpacking-{hex_}.lock",  # type: ignore[union-attr]
                       os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)  # another build unpacking it: wait, then use it
            if (dest / ".complete").exists():
                return
            tmp = root / f".tmp-{os.getpid()}-{hex_[:16]}"
            # with this lock held nobody else unpacks the layer: a temp tree of it is a killed
            # build's (a prune's temp names start with .tmp-prune- and are the prune's)
            for stale in root.glob(f".tmp-*-{hex_[:16]}"):
                if not stale.name.startswith(".tmp-prune-"):
                    shutil.rmtree(stale, ignore_errors=True)
            mark_top_dir(root)  # the new tree in block groups of its own (_internal.topdir)
            (tmp / "fs").mkdir(parents=True)
            try:
                blob = ensure_local(layer)
                size = unpack_for_overlay(blob, tmp / "fs", diff_id=layer.diff_id,
                                          what=f"layer {layer.descriptor.digest}")
                (tmp / ".complete").write_text(f"{layer.diff_id}\n{size}\n")
                shutil.rmtree(dest, ignore_errors=True)  # an interrupted earlier attempt
                os.rename(tmp, dest)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            self.unpacked_now += 1
        finally:
            os.close(lock)

    # ------------------------------------------------------------------ mounts
    def usable(self) -> bool:
        """Whether an overlay mounts here at all (tried once, on empty directories, before any
        layer is unpacked for nothing)."""
        if self.enabled and self._tried is None:
            probe = self.work / "overlay-probe"
            (probe / "lower").mkdir(parents=True)
            (probe / "merged").mkdir()
            try:
                self.mount(probe / "merged", [probe / "lower"])
                self.release(probe / "merged")
                self._tried = True
            except OverlayUnavailable:
                self._tried = False
        return self.enabled and bool(self._tried)

    def lowers_of(self, rootfs: Path) -> list[Path]:
        """What an overlay on top of ``rootfs`` stacks (top first): its upper and lowers when it
        is one of ours (overlay stacks at most two deep, and a RUN step adds one), else it."""
        m = self.mounts.get(rootfs)
        return [m.upper, *m.lowers] if m is not None else [rootfs]

    def mount(self, target: Path, lowers: list[Path]) -> None:
        """Mount an overlay of ``lowers`` (top first) on the empty directory ``target``."""
        if not self.enabled:
            raise OverlayUnavailable("overlay mounts need root")
        if not lowers or len(lowers) > _MAX_LOWERS:
            raise OverlayUnavailable(f"{len(lowers)} lower directories")

        self._n += 1
        base = self.work / fresh_name(f"overlay-{self._n:02d}")
        upper, wdir, links = base / "upper", base / "work", base / "l"
        for d in (upper, wdir, links):
            d.mkdir(parents=True)
        top = os.stat(lowers[0])  # the merged "/" shows the upper's owner, mode and mtime
        os.chown(upper, top.st_uid, top.st_gid)
        upper.chmod(stat.S_IMODE(top.st_mode))
        names = []
        for i, lower in enumerate(lowers):  # short names keep the option under a page
            (links / str(i)).symlink_to(lower)
            names.append(str(links / str(i)))
        data = f"lowerdir={':'.join(names)},upperdir={upper},workdir={wdir}"
        from trustbuild.sandbox import _linux

        try:
            data = _linux.mount_overlay(str(target), data)  # volatile where the kernel has it
        except OSError as exc:
            shutil.rmtree(base, ignore_errors=True)
            self.enabled = False  # this kernel or these privileges: extract from now on
            raise OverlayUnavailable(f"cannot mount overlay: {exc}") from exc
        os.utime(upper, ns=(top.st_atime_ns, top.st_mtime_ns))
        self.mounts[target] = _Mount(target, upper, list(lowers), data)
        try:
            copy_up_hardlinks(target)
        except OSError as exc:
            self.release(target)
            raise OverlayUnavailable(f"cannot copy up hardlinked files: {exc}") from exc

    def layers(self, rootfs: Path) -> _StageLayers | None:
        """The directories of the overlay ``rootfs`` for a RUN step's own overlay to stack (a
        step overlay on the stage overlay would have no inodes index), or None."""
        return _StageLayers(self, rootfs) if rootfs in self.mounts else None

    def release(self, target: Path) -> None:
        """Unmount one overlay (its upper dir stays until the work dir is removed)."""
        if self.mounts.pop(target, None) is not None:
            from trustbuild.sandbox import _linux

            with contextlib.suppress(OSError):
                _linux.umount2(str(target), _linux.MNT_DETACH)

    def close(self) -> None:
        """Unmount every overlay (newest first) and release the unpacked layers' locks."""
        for target in reversed(list(self.mounts)):
            self.release(target)
        for fd in self._locks:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._locks.clear()
        self._held.clear()


class _StageLayers:
    """:class:`trustbuild.sandbox.runner.StageLayers` of one overlay rootfs.

    An overlay with the inodes index refuses a lower directory that is the upper of a mounted
    overlay (EBUSY, "lowerdir is in-use as upperdir/workdir of another mount"), and an
    unmount in the step's mount namespace alone does not free it: :meth:`detach` unmounts the
    stage's overlay (and those of the earlier stages it stacks on) in the builder while the
    step runs, :meth:`attach` mounts them again on the same upper and work directories."""

    def __init__(self, roots: OverlayRoots, rootfs: Path) -> None:
        self.roots = roots
        self.rootfs = rootfs
        self._detached: list[_Mount] = []

    def lowers(self) -> list[Path]:
        m = self.roots.mounts[self.rootfs]
        links = m.upper.parent / "l"  # short names: the step's mount options fit in a page
        return [m.upper, *(links / str(i) for i in range(len(m.lowers)))]

    def detach(self, keep: Sequence[str] = ()) -> bool:
        from trustbuild.sandbox import _linux

        m = self.roots.mounts[self.rootfs]
        dirs = {m.upper, *m.lowers}
        chain = [x for x in self.roots.mounts.values() if x.upper in dirs]
        for x in chain:
            if any(Path(p) == x.target or x.target in Path(p).parents for p in keep):
                return False  # a bind of the step reads it
        for x in chain:
            try:
                _linux.umount2(str(x.target))  # not lazy: it must be gone, or stay
            except OSError:
                self.attach()
                return False
            self._detached.append(x)
        return True

    def merge(self, upper: Path) -> bool:
        from trustbuild._internal.idmap import in_user_namespace
        from trustbuild.sandbox.snapshot import merge_upper

        m = self.roots.mounts.get(self.rootfs)
        if (m is None or in_user_namespace()  # user.overlay.* xattrs there: not merged here
                or os.stat(upper).st_dev != os.stat(m.upper).st_dev):
            return False
        if not self.detach():
            return False
        try:
            merge_upper(upper, m.upper)
        except OSError as exc:
            raise BuildError(f"cannot apply the step's changes to the stage filesystem: "
                             f"{exc}") from exc
        finally:
            self.attach()
        return True

    def attach(self) -> None:
        from trustbuild.sandbox import _linux

        while self._detached:
            x = self._detached.pop()
            try:
                if ",volatile" in x.data:  # the mark a volatile mount leaves refuses a remount
                    with contextlib.suppress(FileNotFoundError):
                        shutil.rmtree(x.upper.parent / "work" / "work" / "incompat")
                _linux.mount_overlay(str(x.target), x.data, volatile=False)  # x.data has it
            except OSError as exc:
                self.roots.mounts.pop(x.target, None)
                raise BuildError(f"cannot mount the stage filesystem {x.target} again: "
                                 f"{exc}") from exc

"""COPY and ADD: sources from the context, an earlier stage, an image, a heredoc or (ADD) a URL.

Docker's rules: a directory source copies its contents; several sources (or a glob matching
several) need a destination ending in ``/``; a relative destination is relative to WORKDIR;
missing parent directories are created (owned like ``--chown``); context files get uid/gid 0
unless ``--chown``; ``--chmod`` sets the permission bits; ADD unpacks local tar archives (plain,
gzip, bzip2, xz) and downloads URLs (``--checksum`` verified). The layer holds exactly the
copied entries and their parent directories.
"""

from __future__ import annotations

import fnmatch
import os
import posixpath
import stat
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from trustbuild._internal import idmap
from trustbuild._internal.dirworkers import DirWorkers, TaskFailed
from trustbuild.builder.commands import AddCmd, CopyCmd
from trustbuild.builder.config import LayerRef
from trustbuild.builder.handlers.fetch import fetch_url, is_archive, is_url
from trustbuild.builder.layers import PendingFills, write_paths_layer
from trustbuild.builder.rootfs import clean_abs, container_path, mkdir_all, secure_join
from trustbuild.builder.steps import layer_step
from trustbuild.builder.users import resolve_chown
from trustbuild.errors import BuildError
from trustbuild.oci.digest import Digest
from trustbuild.oci.extract import extract_layer, iter_layer_entries

if TYPE_CHECKING:
    from trustbuild.builder.executor import StageRun
    from trustbuild.builder.stepcontext import CopyContext

__all__ = ["handle_copy", "handle_add", "Copier"]

_GLOB = set("*?[")


@dataclass
class _Source:
    """One thing to copy: a host path (file, dir or symlink) or heredoc bytes."""

    path: Path | None
    name: str
    data: bytes | None = None
    keep_owner: bool = False  # --from / archive: keep the owners it has
    context_rel: str | None = None  # path relative to the context root (for .dockerignore)
    mode: int | None = None  # forced mode (URL downloads: 0600)


class Copier:
    """Copies sources into a rootfs, recording every container path it writes.

    With ``pending`` a regular file is created with its final owner, mode and times but left
    empty, and recorded there: :func:`write_paths_layer` then reads its source once, filling
    the file and writing the layer entry together. A pending file about to be removed or
    replaced (a later source over the same path) makes every pending file be filled first.
    """

    def __init__(self, rootfs: Path, *, uid: int | None, gid: int | None, chmod: int | None,
                 ignore: object | None = None, mtime: int | None = None,
                 protect: Callable[[str], bool] | None = None,
                 pending: PendingFills | None = None,
                 creates: DirWorkers | None = None) -> None:
        self.pending = pending
        # with ``pending``: the empty files are created on these threads, and directory
        # owners/modes/times are set in :meth:`finish` (a file created later changes its mtime)
        self.creates = creates if pending is not None else None
        self._dir_meta: list[tuple[Path, int, int, int, tuple[int, int]]] = []
        self.rootfs = rootfs
        self.protect = protect  # container mode: the ignore list (host paths never written)
        self.uid, self.gid, self.chmod = uid, gid, chmod
        self.mtime = mtime  # --reproducible: every copied entry gets exactly this mtime
        self._links: dict[tuple[int, int], Path] = {}  # source inode -> first copy
        self.ignore = ignore
        self.touched: list[str] = []

    def _owner(self, st: os.stat_result, keep: bool, src: Path | None = None) -> tuple[int, int]:
        if self.uid is not None and self.gid is not None:
            return self.uid, self.gid
        if not keep:
            return 0, 0
        recorded = idmap.recorded_owner(src) if src is not None else None
        return recorded or (st.st_uid, st.st_gid)

    def _ignored(self, rel: str | None) -> bool:
        if not rel or self.ignore is None or not self.ignore:
            return False
        return bool(self.ignore.excluded(rel))  # type: ignore[attr-defined]

    def _canon(self, path: str) -> tuple[str, Path]:
        parent = secure_join(self.rootfs, posixpath.dirname(path))
        host = parent / posixpath.basename(path) if posixpath.basename(path) else parent
        self._check_protected(host)
        return container_path(self.rootfs, host), host

    def _check_protected(self, host: Path) -> None:
        if self.protect is not None and self.protect(str(host)):
            raise BuildError(f"{host} is on container mode's ignore list (a mount point, the "
                             "kaniko dir or the executor's own files): nothing is written there")

    def _settle(self) -> None:
        """Wait until every file handed to the threads exists."""
        if self.creates is not None:
            self.creates.wait()

    def finish(self) -> None:
        """Wait for the files being created, then set the copied directories' owners, modes
        and times (deepest first, as they were copied). Before anything reads the tree."""
        self._settle()
        metas, self._dir_meta = self._dir_meta, []
        for host, uid, gid, mode, times in metas:
            idmap.chown(host, uid, gid)
            os.chmod(host, mode)
            os.utime(host, ns=times)

    def mkdirs(self, path: str) -> None:
        """Create missing directories of ``path`` (owned by --chown, else root)."""
        self._settle()  # a file still being created could be in the way
        self._check_protected(secure_join(self.rootfs, path))
        created = mkdir_all(self.rootfs, path, uid=self.uid or 0, gid=self.gid or 0)
        self.touched.extend(created)

    def _clear(self, host: Path, *, want_dir: bool) -> None:
        if self.creates is not None and self.creates.busy(str(host)):
            self._settle()
        try:
            st = os.lstat(host)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            if want_dir:
                return
            self._settle()
            if self.pending:
                self.pending.flush()  # a pending file may be inside
            import shutil
            shutil.rmtree(host)
        else:
            if self.pending is not None and self.pending.holds(st):
                self._settle()  # no thread adds to the pending files while they are filled
                self.pending.flush()
            os.unlink(host)

    def copy_bytes(self, data: bytes | Path, dest: str, *, mode: int) -> None:
        """Write a heredoc (bytes) or a downloaded file (streamed) at container path ``dest``."""
        self.mkdirs(posixpath.dirname(dest))
        canon, host = self._canon(dest)
        self._clear(host, want_dir=False)
        with open(host, "xb") as f:
            if isinstance(data, Path):
                if self.pending is None:
                    with open(data, "rb") as src:
                        while chunk := src.read(1 << 20):
                            f.write(chunk)
            else:
                f.write(data)
        if isinstance(data, Path) and self.pending is not None:
            self.pending.add(host, data)
        idmap.chown(host, self.uid or 0, self.gid or 0)
        os.chmod(host, self.chmod if self.chmod is not None else mode)
        self.touched.append(canon)

    def copy_entry(self, src: Path, dest: str, *, keep_owner: bool, rel: str | None,
                   follow: bool = False, resolved: tuple[str, Path] | None = None) -> bool:
        """Copy one file/dir/symlink (dirs recursively); returns False when all was ignored.

        ``resolved``: (canonical container path, host path) of ``dest``, known when it is a
        name in a directory this copy has just made sure is a real directory (no symlink to
        resolve on the way again)."""
        st = os.stat(src) if follow else os.lstat(src)
        if resolved is not None:
            canon, host = resolved
            self._check_protected(host)
        else:
            canon, host = self._canon(dest)
        uid, gid = self._owner(st, keep_owner, src)
        mode = stat.S_IMODE(st.st_mode) if self.chmod is None else self.chmod
        if stat.S_ISDIR(st.st_mode):
            names = sorted(os.listdir(src))
            if self._ignored(rel) and not self._may_include(rel):
                return False
            self._clear(host, want_dir=True)
            existed = host.is_dir()
            if not existed:
                os.mkdir(host)
            kept = [self.copy_entry(src / n, posixpath.join(canon, n), keep_owner=keep_owner,
                                    rel=f"{rel}/{n}" if rel else (n if rel == "" else None),
                                    resolved=(posixpath.join(canon, n), host / n))
                    for n in names]
            if self._ignored(rel) and not any(kept):
                if not existed:
                    os.rmdir(host)
                return False
            if self.creates is not None:
                self._dir_meta.append((host, uid, gid, mode, self._times(st)))
            else:
                idmap.chown(host, uid, gid)
                os.chmod(host, mode)
                os.utime(host, ns=self._times(st))
            self.touched.append(canon)
            return True
        if self._ignored(rel):
            return False
        self._clear(host, want_dir=False)
        if stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(src), host)
            idmap.chown(host, uid, gid, follow_symlinks=False)
        elif stat.S_ISREG(st.st_mode):
            first = self._links.get((st.st_dev, st.st_ino)) if st.st_nlink > 1 else None
            if first is not None:
                self._settle()  # the first name may still be being created
            if first is not None and os.path.exists(first):
                os.link(first, host)  # keep hardlinked files hardlinked, as buildah does
                self.touched.append(canon)
                return True
            if self.creates is not None and self.pending is not None:
                self.creates.submit(str(host), str(host.parent), self._create_pending(
                    host, src, uid, gid, mode, self._times(st)))
                if st.st_nlink > 1:
                    self._links[(st.st_dev, st.st_ino)] = host
                self.touched.append(canon)
                return True
            if self.pending is not None:
                with open(host, "xb"):
                    pass
                self.pending.add(host, src)
            else:
                with open(src, "rb") as fin, open(host, "xb") as fout:
                    while chunk := fin.read(1 << 20):
                        fout.write(chunk)
            idmap.chown(host, uid, gid)
            os.chmod(host, mode)
            if st.st_nlink > 1:
                self._links[(st.st_dev, st.st_ino)] = host
        elif stat.S_ISFIFO(st.st_mode):
            os.mkfifo(host)
            idmap.chown(host, uid, gid)
            os.chmod(host, mode)
        elif (stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)) and keep_owner:
            os.mknod(host, stat.S_IFMT(st.st_mode) | mode, st.st_rdev)
            idmap.chown(host, uid, gid)
        else:
            return False  # sockets (and devices from a context) are not copied
        os.utime(host, ns=self._times(st), follow_symlinks=False)
        self.touched.append(canon)
        return True

    def _create_pending(self, host: Path, src: Path, uid: int, gid: int, mode: int,
                        times: tuple[int, int]) -> Callable[[], None]:
        """The task that creates ``host`` empty, final owner/mode/times, content pending."""
        pending = self.pending
        assert pending is not None

        def create() -> None:
            with open(host, "xb"):
                pass
            pending.add(host, src)
            idmap.chown(host, uid, gid)
            os.chmod(host, mode)
            os.utime(host, ns=times, follow_symlinks=False)

        return create

    def _times(self, st: os.stat_result) -> tuple[int, int]:
        if self.mtime is not None:
            return self.mtime * 10**9, self.mtime * 10**9
        return st.st_atime_ns, st.st_mtime_ns

    def _may_include(self, rel: str | None) -> bool:
        return bool(self.ignore.dir_may_have_included(rel))  # type: ignore[union-attr]

    def copy_dir_contents(self, src: Path, dest: str, *, keep_owner: bool, rel: str | None) -> None:
        """Copy what is inside directory ``src`` into directory ``dest``."""
        self.mkdirs(dest)
        canon, _host = self._canon(dest)
        for name in sorted(os.listdir(src)):
            child_rel = (f"{rel}/{name}" if rel else name) if rel is not None else None
            self.copy_entry(src / name, posixpath.join(canon, name), keep_owner=keep_owner,
                            rel=child_rel)


def _glob_root(ex: CopyContext, ins: CopyCmd | AddCmd, root: Path, pattern: str
               ) -> list[tuple[Path, str]]:
    """(host path, name) of what ``pattern`` matches in another stage's/image's rootfs.

    The host path has every symlink resolved inside ``root`` (a source that is a symlink is
    followed, as Docker does); the name is the matched path's own last component, so
    ``/usr/lib/link`` copies the target's content as ``link``.
    """
    clean = clean_abs(pattern)
    if not (_GLOB & set(clean)):
        host = secure_join(root, clean)
        if not os.path.lexists(host):
            raise ex.error(ins, f"{pattern}: no such file or directory in the source image")
        return [(host, posixpath.basename(clean) or host.name)]
    found = ["/"]
    for part in [p for p in clean.split("/") if p]:
        nxt = []
        for base in found:
            hb = secure_join(root, base)
            if not (_GLOB & set(part)):
                if os.path.lexists(hb / part):
                    nxt.append(posixpath.join(base, part))
                continue
            try:
                names = sorted(os.listdir(hb))
            except (NotADirectoryError, FileNotFoundError):
                continue
            nxt.extend(posixpath.join(base, n) for n in names if fnmatch.fnmatchcase(n, part))
        found = nxt
    if not found:
        raise ex.error(ins, f"{pattern}: no source files were specified (nothing matches)")
    return [(secure_join(root, f), posixpath.basename(f)) for f in found]


def _heredoc_bytes(ins: CopyCmd | AddCmd, word: str) -> bytes:
    doc = ins.heredoc_for(word)
    assert doc is not None
    return doc.content.encode()  # expanded with the command (unless the marker was quoted)


def _from_ref(ins: CopyCmd | AddCmd) -> str:
    return ins.from_ if isinstance(ins, CopyCmd) else ""


def _cache_key(ex: CopyContext, st: StageRun, ins: CopyCmd | AddCmd, srcs: list[str], *,
               spec: dict[str, object]) -> str | None:
    """The step's key: ``spec`` plus what every source holds (None: cannot be keyed)."""
    if ex.cache is None:
        return None
    from_ref = _from_ref(ins)
    sources: list[list[str]] = []
    for word in srcs:
        if ins.heredoc_for(word) is not None:
            data = _heredoc_bytes(ins, word)
            sources.append(["heredoc", word, str(Digest.of(data))])
        elif from_ref:
            sources.append(["from", word])
        elif isinstance(ins, AddCmd) and is_url(word):
            checksum = ins.checksum
            if not checksum:
                return None  # the content is only known after the download: always fetched
            sources.append(["url", word, checksum])
        else:
            for p in ex.ctx.resolve_sources(word, line=ins.line, path=ex.path,
                                            instruction=ins.keyword):
                sources.append(["context", ex.ctx.relpath(Path(p)), ex.hasher.digest(Path(p))])
    if from_ref:
        ref = ex.copy_from_ref(st, ins) or from_ref
        spec = {**spec, "from": ex.source_key(st, ref)}
    return ex.cache_key(st, ins.keyword, {**spec, "sources": sources})


def _sources(ex: CopyContext, st: StageRun, ins: CopyCmd | AddCmd, words: list[str], *,
             tmp: Path) -> list[_Source]:
    out: list[_Source] = []
    from_ref = _from_ref(ins)
    for word in words:
        doc = ins.heredoc_for(word)
        if doc is not None:
            out.append(_Source(None, doc.name, _heredoc_bytes(ins, word)))
            continue
        if from_ref:
            ref = ex.copy_from_ref(st, ins) or from_ref
            root = ex.source_root(st, ins, ref)
            for p, name in _glob_root(ex, ins, root, word):
                out.append(_Source(p, name, keep_owner=True))
            continue
        if isinstance(ins, AddCmd) and is_url(word):
            path, name = fetch_url(word, tmp, checksum=ins.checksum or None)
            out.append(_Source(path, name, mode=0o600))
            continue
        root = Path(ex.ctx.root)
        for p in ex.ctx.resolve_sources(word, line=ins.line, path=ex.path,
                                        instruction=ins.keyword):
            try:
                rel = str(Path(p).relative_to(root))
            except ValueError:
                rel = None
            out.append(_Source(Path(p), Path(p).name, context_rel="" if rel == "." else rel))
    return out


def _unsupported(ins: CopyCmd | AddCmd) -> list[str]:
    """The flags given that trustbuild does not implement (BuildKit's names)."""
    given = {"exclude": bool(ins.exclude)}
    if isinstance(ins, CopyCmd):
        given["parents"] = ins.parents is not None
    else:
        given["keep-git-dir"] = ins.keep_git_dir is not None
        given["unpack"] = ins.unpack is not None
    return [flag for flag in ("parents", "exclude", "keep-git-dir", "unpack") if given.get(flag)]


def _copy(ex: CopyContext, st: StageRun, ins: CopyCmd | AddCmd) -> None:
    for flag in _unsupported(ins):
        raise ex.error(ins, f"{ins.keyword} --{flag} is not supported by trustbuild")
    add = isinstance(ins, AddCmd)
    srcs, dest = list(ins.sources), ins.dest
    words = [*srcs, dest]
    chown = ins.chown
    chmod_text = ins.chmod
    chmod = None
    if chmod_text:
        try:
            chmod = int(chmod_text, 8)
        except ValueError:
            raise ex.error(ins, f"invalid --chmod {chmod_text!r}: expected octal bits like "
                                "0755") from None
        if chmod > 0o7777:
            raise ex.error(ins, f"invalid --chmod {chmod_text!r}: more than 4 octal digits")
    workdir = st.image.runtime.working_dir or "/"
    dest_abs = clean_abs(dest, workdir=workdir)
    dir_syntax = dest.endswith("/") or dest in (".", "..") or dest.endswith("/.")
    text = f"{ins.keyword} " + " ".join(words)
    rec = ex.step(st, ins, text)
    link = "" if ins.link is None else ("true" if ins.link else "false")
    key = _cache_key(ex, st, ins, srcs, spec={
        "words": words, "dest": dest_abs, "dir": dir_syntax, "chown": chown, "chmod": chmod,
        "link": link})

    def produce() -> LayerRef:
        uid = gid = None
        if chown:
            try:
                uid, gid = resolve_chown(st.rootfs, chown)
            except BuildError as exc:
                raise ex.error(ins, str(exc)) from None
        ignore = ex.ctx.ignore
        forced = ex.epoch if ex.options.reproducible else None
        # container mode (the rootfs is "/", the context inside it) copies as it goes: a
        # source could be a path the copy itself replaces
        pending = PendingFills() if ex.cfs is None else None
        creates = DirWorkers(name="copy-create") if pending is not None else None
        copier = Copier(st.rootfs, uid=uid, gid=gid, chmod=chmod, ignore=ignore, mtime=forced,
                        protect=ex.cfs.excluded if ex.cfs is not None else None, pending=pending,
                        creates=creates)
        try:
            return _copy_all(ex, st, ins, copier, srcs, dest_abs, dir_syntax=dir_syntax, add=add)
        except TaskFailed as exc:
            err = exc.error
            if isinstance(err, OSError):
                raise ex.error(ins, f"cannot create {exc.key}: {err.strerror or err}") from err
            raise err from None
        finally:
            if creates is not None:
                creates.close()

    layer_step(ex, st, ins, rec, key=key, history=f"{text} # buildkit", produce=produce)


def _copy_all(ex: CopyContext, st: StageRun, ins: CopyCmd | AddCmd, copier: Copier,
              srcs: list[str], dest_abs: str, *, dir_syntax: bool, add: bool) -> LayerRef:
    """Copy every source into the stage, then write the layer of what was written."""
    with tempfile.TemporaryDirectory(dir=ex.work, prefix="add-") as tmpname:
        tmp = Path(tmpname)
        items = _sources(ex, st, ins, srcs, tmp=tmp)
        if not items:
            raise ex.error(ins, "no source files were specified")
        existing = secure_join(st.rootfs, dest_abs)
        to_dir = dir_syntax or existing.is_dir()
        if (len(items) > 1 or len(srcs) > 1) and not to_dir:
            raise ex.error(ins, f"when using {ins.keyword} with more than one source file, "
                                "the destination must be a directory and end with a /")
        for item in items:
            _copy_item(ex, ins, copier, item, dest_abs, to_dir=to_dir, add=add, tmp=tmp)
        copier.finish()
        return write_paths_layer(ex.layers, st.rootfs, copier.touched,
                                 pending=copier.pending)


def _copy_item(ex: CopyContext, ins: CopyCmd | AddCmd, copier: Copier, item: _Source,
               dest_abs: str, *, to_dir: bool, add: bool, tmp: Path) -> None:
    if item.data is not None:
        target = posixpath.join(dest_abs, item.name) if to_dir else dest_abs
        copier.copy_bytes(item.data, target, mode=0o644)
        return
    assert item.path is not None
    st = os.stat(item.path)  # the source itself is followed (its own symlink, as Docker does)
    if stat.S_ISDIR(st.st_mode):
        copier.copy_dir_contents(item.path, dest_abs, keep_owner=item.keep_owner,
                                 rel=item.context_rel)
        return
    if add and item.mode is None and is_archive(item.path):
        staging = Path(tempfile.mkdtemp(dir=tmp, prefix="unpack-"))
        try:
            # an ADD archive is not a layer: its .wh.* entries are ordinary files
            extract_layer(item.path, staging, allow_devices=False, whiteouts=False,
                          what=f"archive {item.name}")
        except Exception as exc:  # noqa: BLE001 - any unpack failure is the user's archive
            raise ex.error(ins, f"cannot unpack {item.name}: {exc}") from None
        # archive entries keep their owners and modes (--chown/--chmod do not apply, as in
        # buildah); a "./" entry sets the destination directory's owner and mode, as tar does
        copier.mkdirs(dest_abs)  # a new destination directory is owned like --chown
        plain = Copier(copier.rootfs, uid=None, gid=None, chmod=None, mtime=copier.mtime,
                       protect=copier.protect, pending=copier.pending, creates=copier.creates)
        plain.copy_dir_contents(staging, dest_abs, keep_owner=True, rel=None)
        plain.finish()
        if _has_root_entry(item.path):
            canon, host = plain._canon(dest_abs)
            st_root = os.stat(staging)
            idmap.chown(host, *(idmap.recorded_owner(staging) or (st_root.st_uid, st_root.st_gid)))
            os.chmod(host, stat.S_IMODE(st_root.st_mode))
            plain.touched.append(canon)
        copier.touched.extend(plain.touched)
        return
    target = posixpath.join(dest_abs, item.name) if to_dir else dest_abs
    copier.mkdirs(posixpath.dirname(target))
    if item.mode is not None:
        copier.copy_bytes(item.path, target, mode=item.mode)
        return
    copier.copy_entry(item.path, target, keep_owner=item.keep_owner, rel=item.context_rel,
                      follow=True)


def _has_root_entry(archive: Path) -> bool:
    for info in iter_layer_entries(archive):
        if info.name in (".", "./", "/"):
            return True
    return False


def handle_copy(ex: CopyContext, st: StageRun, ins: CopyCmd) -> None:
    """COPY [--from] [--chown] [--chmod] [--link] src... dest."""
    _copy(ex, st, ins)


def handle_add(ex: CopyContext, st: StageRun, ins: AddCmd) -> None:
    """ADD: COPY plus URLs and local tar archives (unpacked)."""
    _copy(ex, st, ins)

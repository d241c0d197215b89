"""The one in-root path resolver: a path seen as a process chrooted to ``root`` would see it.

Every lookup is ``openat``-style, one component at a time below an open directory fd
(``O_NOFOLLOW | O_DIRECTORY``): a symlink met on the way is read and its target walked inside
the root (an absolute target restarts at the root, ``..`` stops at it); the kernel never follows
one. ``..`` is the parent directory's fd, or the root itself at the top. A resolution follows
at most ``MAX_SYMLINKS`` links (Linux's 40). A *confined* root (the build context) refuses an
absolute symlink or a ``..`` above it instead of clamping; with ``follow=False`` any symlink on
the way is refused (extracting a context tar). Every refusal is one
:class:`~trustbuild.errors.UnsafePath`.

Usage::

    host = resolve_in_root(rootfs, "/etc/passwd")        # a host Path below rootfs, may not exist
    with RootDir(rootfs) as root:
        fd = root.open_dir("usr/lib", create=True)       # a new dir fd below the root
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from trustbuild.errors import UnsafePath

__all__ = ["RootDir", "resolve_in_root", "MAX_SYMLINKS", "DIR_FLAGS"]

MAX_SYMLINKS = 40
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class RootDir:
    """A directory held open as the root of in-root resolutions (a rootfs, the build context)."""

    def __init__(self, path: Path | str, *, confined: bool = False, follow: bool = True,
                 what: str = "the image root") -> None:
        self.path = Path(path)
        self.confined = confined
        self.follow = follow
        self.what = what
        self.fd = os.open(self.path, DIR_FLAGS)
        st = os.fstat(self.fd)
        self.ident = (st.st_dev, st.st_ino)

    def close(self) -> None:
        """Close the root's fd (idempotent)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> RootDir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the two faces ---------------------------------------------------------------------

    def resolve(self, path: str, *, follow_last: bool = True) -> Path:
        """The host path of ``path`` (relative to the root; a leading "/" is the root).

        Components that do not exist (or sit below a non-directory) are kept as written, ``..``
        among them folding lexically; with ``follow_last=False`` a final symlink is not
        followed (to lstat, replace or remove the link itself).
        """
        fd, names, tail = self._walk(path, os.dup(self.fd), create=False,
                                     follow_last=follow_last, partial=True)
        os.close(fd)
        return self.path.joinpath(*names, *tail)

    def open_dir(self, path: str, *, start: int | None = None, create: bool = False) -> int:
        """A new fd (the caller closes it) of directory ``path``, walked from ``start`` (a dir
        fd below the root; default the root). Missing components are created 0755 with
        ``create``, else FileNotFoundError; a non-directory on the way is NotADirectoryError."""
        fd, _, _ = self._walk(path, os.dup(self.fd if start is None else start), create=create,
                              follow_last=True, partial=False)
        return fd

    # -- the walk --------------------------------------------------------------------------

    def _at_root(self, fd: int) -> bool:
        st = os.fstat(fd)
        return (st.st_dev, st.st_ino) == self.ident

    def _walk(self, path: str, start: int, *, create: bool, follow_last: bool,
              partial: bool) -> tuple[int, list[str], list[str]]:
        """Walk ``path`` from ``start`` (an fd this call owns). Returns the fd of the deepest
        directory reached, its names below ``start`` and (``partial``) the tail not found."""
        cur = start
        names: list[str] = []
        tail: list[str] = []
        todo = list(reversed(path.split("/")))
        links = 0
        via = ("", "")  # the last symlink followed (root-relative link, target), for errors
        try:
            while todo:
                comp = todo.pop()
                if comp in ("", "."):
                    continue
                if comp == "..":
                    if tail:
                        tail.pop()
                        continue
                    if self._at_root(cur):
                        if self.confined:
                            raise self._error("above", path, *via)
                        continue
                    nxt = os.open("..", DIR_FLAGS, dir_fd=cur)
                    os.close(cur)
                    cur = nxt
                    if names:
                        names.pop()
                    continue
                if tail or (not todo and not follow_last):
                    tail.append(comp)
                    continue
                try:
                    st = os.stat(comp, dir_fd=cur, follow_symlinks=False)
                except FileNotFoundError:
                    if partial:
                        tail.append(comp)
                        continue
                    if not create:
                        raise
                    os.mkdir(comp, 0o755, dir_fd=cur)
                    nxt = os.open(comp, DIR_FLAGS, dir_fd=cur)
                    os.fchmod(nxt, 0o755)  # not the umask's
                    os.close(cur)
                    cur = nxt
                    names.append(comp)
                    continue
                if stat.S_ISLNK(st.st_mode):
                    links += 1
                    target = os.readlink(comp, dir_fd=cur)
                    via = ("/".join([*names, comp]), target)
                    if not self.follow:
                        raise self._error("symlink", path, *via)
                    if links > MAX_SYMLINKS:
                        raise self._error("loop", path, *via)
                    if target.startswith("/"):
                        if self.confined:
                            raise self._error("absolute", path, *via)
                        os.close(cur)
                        cur = os.dup(self.fd)
                        names = []
                    todo.extend(reversed(target.split("/")))
                    continue
                if not stat.S_ISDIR(st.st_mode):
                    if partial:
                        tail.append(comp)
                        continue
                    raise NotADirectoryError(errno.ENOTDIR, "not a directory", comp)
                nxt = os.open(comp, DIR_FLAGS, dir_fd=cur)
                os.close(cur)
                cur = nxt
                names.append(comp)
            return cur, names, tail
        except BaseException:
            os.close(cur)
            raise

    def _error(self, kind: str, path: str, link: str, target: str) -> UnsafePath:
        if kind == "loop":
            msg = (f"too many levels of symbolic links (more than {MAX_SYMLINKS}) resolving "
                   f"{path!r} in {self.what}")
        elif kind == "symlink":
            msg = f"{path!r} goes through symlink {link} in {self.what}"
        elif kind == "absolute":
            msg = f"symlink {link} -> {target} is absolute and points outside {self.what}"
        else:
            how = f" (symlink {link} -> {target})" if link else ""
            msg = f"{path!r} leads above {self.what}{how}"
        return UnsafePath(msg, kind=kind, path=path, link=link, target=target)


def resolve_in_root(root: Path | str, path: str, *, follow_last: bool = True,
                    confined: bool = False, what: str = "the image root") -> Path:
    """:meth:`RootDir.resolve` of ``path`` below ``root`` (opened for this one call)."""
    with RootDir(root, confined=confined, what=what) as rd:
        return rd.resolve(path, follow_last=follow_last)

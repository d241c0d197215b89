"""Build contexts: a local directory, a tar (file or stdin, optionally compressed), a git repo.

Example::

    with open_context("tar://stdin", stdin=sys.stdin.buffer) as ctx:
        name, text = read_dockerfile(None, ctx)
        for src in ctx.resolve_sources("*.txt", line=3, path=name):
            ...

Every context ends up as a local directory (``BuildContext.root``); tar and git contexts live in
a temporary directory that ``close()`` removes. COPY/ADD sources are resolved with
``resolve_sources``, which applies .dockerignore and refuses anything outside the context.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from trustbuild._internal.inroot import resolve_in_root
from trustbuild._internal.secrets import REDACTED
from trustbuild.builder.dockerignore import IgnoreMatcher, component_regex, go_clean
from trustbuild.errors import BuildError, ContextError, DockerfileError, StoreError, UnsafePath

__all__ = [
    "BuildContext",
    "ContextError",
    "GitSource",
    "open_context",
    "parse_git_url",
    "read_dockerfile",
]

_GLOB = re.compile(r"[*?\[]")
_MAX_READ = 16 << 20  # Dockerfile and ignore files
_Fail = Callable[[str], BuildError]


@dataclass
class BuildContext:
    """A build context materialised as a local directory."""

    root: Path  # local directory holding the context (after the sub-path)
    source: str  # "dir:///abs", "tar://stdin", "tar:///abs.tar", or the git URL (no secrets)
    git_commit: str | None = None
    ignore: IgnoreMatcher = field(default_factory=lambda: IgnoreMatcher([]))
    tempdir: Path | None = None  # removed by close()
    _digests: dict[str, str] = field(default_factory=dict, repr=False)  # file_digest memo
    # held by digest() while it hashes every file (on a thread, see builder/plan.py): a
    # file_digest miss waits for it instead of reading the same file a second time
    _digesting: threading.RLock = field(default_factory=threading.RLock, repr=False,
                                        compare=False)

    def __enter__(self) -> BuildContext:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Remove the temporary directory of a tar or git context (no-op for directories)."""
        if self.tempdir is not None:
            _remove_tree(self.tempdir)
            self.tempdir = None

    # -- paths -----------------------------------------------------------------------------
    def relpath(self, path: Path) -> str:
        """``path`` relative to the root, slash-separated ("." for the root itself)."""
        rel = os.path.relpath(path, self.root)
        return "." if rel == "." else rel.replace(os.sep, "/")

    def excluded_path(self, path: Path) -> bool:
        """True when .dockerignore excludes ``path`` (a path under root)."""
        return self.ignore.excluded(self.relpath(path))

    def iter_included(self, start: Path | None = None) -> Iterator[Path]:
        """Entries below ``start`` (default: root) that .dockerignore keeps, in sorted order.

        Symlinks are reported, never followed. An excluded directory is reported only when
        something below it is re-included by a ``!`` pattern (Docker creates such parents).
        """
        yield from self._walk(start or self.root)

    def _walk(self, directory: Path) -> list[Path]:
        out: list[Path] = []
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError as exc:
            raise ContextError(f"cannot read {directory}: {exc.strerror}") from None
        for entry in entries:
            path = Path(entry.path)
            rel = self.relpath(path)
            excluded = self.ignore.excluded(rel)
            if entry.is_dir(follow_symlinks=False):
                if excluded and not self.ignore.dir_may_have_included(rel):
                    continue
                below = self._walk(path)
                if not excluded or below:
                    out.append(path)
                out.extend(below)
            elif not excluded:
                out.append(path)
        return out

    def digest(self) -> str:
        """sha256 over the included entries (see docs/dockerfile.md, "Context digest").

        One line per entry, sorted by relative path: ``relpath NUL type NUL mode NUL size NUL
        detail LF`` where type is d/f/l, mode the octal permission bits (with setuid/setgid/
        sticky), size the file size (0 otherwise) and detail the content sha256 (files) or the
        link target (symlinks). Owners and mtimes are left out: COPY does not keep them.
        """
        with self._digesting:
            return self._digest()

    def _digest(self) -> str:
        lines = []
        for path in self.iter_included():
            st = path.lstat()
            mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISDIR(st.st_mode):
                kind, size, detail = "d", 0, ""
            elif stat.S_ISLNK(st.st_mode):
                kind, size, detail = "l", 0, os.readlink(path)
            elif stat.S_ISREG(st.st_mode):
                kind, size, detail = "f", st.st_size, self.file_digest(path)
            else:
                continue  # sockets, fifos and devices are never copied
            lines.append(f"{self.relpath(path)}\0{kind}\0{mode:o}\0{size}\0{detail}\n")
        h = hashlib.sha256()
        for line in sorted(lines):
            h.update(line.encode("utf-8", "surrogateescape"))
        return "sha256:" + h.hexdigest()

    def file_digest(self, path: Path) -> str:
        """sha256 hex of a regular file's content, read once per build (the context is not
        expected to change while it is built)."""
        key = os.fspath(path)
        digest = self._digests.get(key)
        if digest is None:
            with self._digesting:
                if key not in self._digests:
                    self._digests[key] = _file_sha256(path)
                digest = self._digests[key]
        return digest

    # -- COPY / ADD sources ----------------------------------------------------------------
    def resolve_sources(self, pattern: str, *, line: int, path: str,
                        instruction: str = "COPY") -> list[Path]:
        """The context paths a COPY/ADD source names (after variable expansion).

        Globs follow Go's filepath.Match per path component, plus ``**`` for any number of
        directories. Returned paths are lexical (``root / relpath``) and sorted; every symlink
        on the way, including a final one, was checked to resolve inside the context (Docker
        follows a symlink named as a source). Excluded paths are dropped.
        """
        def fail(message: str) -> DockerfileError:
            return DockerfileError(message, path=path, line=line, instruction=instruction)

        if not pattern:
            raise fail(f"{instruction} failed: empty source path")
        rel = go_clean(pattern.lstrip("/") or ".")
        if rel == ".." or rel.startswith("../"):
            raise fail(f"{instruction} failed: forbidden path outside the build context: "
                       f"{pattern}")
        if not _GLOB.search(rel):
            target = self.root if rel == "." else self.root / rel
            self._check_inside(rel, fail)
            if not os.path.lexists(target) or self._excluded_source(rel, target):
                raise fail(f"{instruction} failed: file not found in build context or "
                           f"excluded by .dockerignore: {pattern}")
            return [target]
        globbed = self._glob(rel.split("/"), fail=fail, instruction=instruction)
        matches = [m for m in globbed if self._keep_match(m, fail)]
        if not matches:
            raise fail(f"{instruction} failed: no source files were specified "
                       f"(nothing in the build context matches {pattern})")
        return sorted(matches)

    def _keep_match(self, path: Path, fail: _Fail) -> bool:
        rel = self.relpath(path)
        if self._excluded_source(rel, path):
            return False
        self._check_inside(rel, fail)
        return True

    def _excluded_source(self, rel: str, target: Path) -> bool:
        if rel == "." or not self.ignore.excluded(rel):
            return False
        if target.is_dir() and not target.is_symlink():
            return not self.ignore.dir_may_have_included(rel)
        return True

    def _glob(self, parts: list[str], *, fail: _Fail, instruction: str) -> list[Path]:
        candidates = [self.root]
        for comp in parts:
            nxt: list[Path] = []
            if comp == "**":
                for cand in candidates:
                    nxt.append(cand)
                    nxt.extend(p for p in self._descendant_dirs(cand))
            elif _GLOB.search(comp):
                try:
                    regex = component_regex(comp, strict=True)
                except ValueError as exc:
                    raise fail(f"{instruction} failed: {exc}") from None
                for cand in candidates:
                    if not cand.is_dir():
                        continue
                    try:
                        names = sorted(os.listdir(cand))
                    except OSError:
                        continue
                    nxt.extend(cand / n for n in names if regex.match(n))
            else:
                nxt = [cand / comp for cand in candidates if os.path.lexists(cand / comp)]
            candidates = list(dict.fromkeys(nxt))
        return [c for c in candidates if c != self.root]

    def _descendant_dirs(self, directory: Path) -> Iterator[Path]:
        for dirpath, dirnames, _ in os.walk(directory):
            dirnames.sort()
            for d in dirnames:
                yield Path(dirpath) / d

    def _check_inside(self, rel: str, fail: _Fail) -> Path:
        """Follow symlinks along ``rel`` like a chroot would; refuse any that leave the root.

        Returns the host path with every symlink resolved (the last component may not exist).
        This is the one resolver for everything read from the context: COPY/ADD sources, bind
        mounts, the Dockerfile and the ignore files.
        """
        try:
            return resolve_in_root(self.root, rel, confined=True, what="the build context")
        except UnsafePath as exc:
            if exc.kind == "absolute":
                raise fail(f"symlink {exc.link} -> {exc.target} is absolute and points outside "
                           "the build context; use a relative link inside the context") from None
            if exc.kind == "above":
                raise fail(f"forbidden path outside the build context: {rel} (a symlink "
                           "on the way points above the context root)") from None
            raise fail(f"too many levels of symbolic links in {rel}") from None

    # -- files the builder reads itself (Dockerfile, ignore files) -------------------------
    def read_file(self, rel: str, *, what: str) -> bytes | None:
        """The bytes of regular file ``rel`` (context-relative), or None when there is none.

        Symlinks are resolved inside the context (``_check_inside``); one that leaves it is a
        ContextError, never followed on the host.
        """
        clean = go_clean(rel.lstrip("/"))
        if clean == ".." or clean.startswith("../"):
            raise ContextError(f"{what} {rel!r} is outside the build context")

        def fail(message: str) -> BuildError:
            return ContextError(f"cannot read the {what} {clean!r} from the build context: "
                                f"{message}")

        path = self._check_inside(clean, fail)
        return _read_regular(path, what=what)

    def load_ignore(self, dockerfile: str | Path | None = None) -> None:
        """Set ``ignore`` from the ignore file Docker uses for ``dockerfile``.

        ``<Dockerfile>.dockerignore`` next to the Dockerfile wins over the root's
        ``.dockerignore``. ``dockerfile`` is context-relative (str) or, for a Dockerfile given
        outside the context, a host path whose neighbour is read on the host.
        """
        found: tuple[str, bytes] | None = None
        if isinstance(dockerfile, Path):
            specific = dockerfile.with_name(dockerfile.name + ".dockerignore")
            data = _read_regular(specific, what="ignore file") if specific.exists() else None
            if data is not None:
                found = (str(specific), data)
        elif dockerfile is not None:
            name = go_clean(dockerfile) + ".dockerignore"
            data = self.read_file(name, what="ignore file")
            if data is not None:
                found = (name, data)
        if found is None:
            data = self.read_file(".dockerignore", what="ignore file")
            if data is not None:
                found = (".dockerignore", data)
        if found is None:
            self.ignore = IgnoreMatcher([])
            return
        source, data = found
        text = _decode(data, source)
        self.ignore = IgnoreMatcher.from_text(text, source=source)


def _read_regular(path: Path, *, what: str) -> bytes | None:
    """Read ``path`` if it is a regular file (never a FIFO or device; no final symlink)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ContextError(f"the {what} {path} is a symlink; name its target") from None
        raise ContextError(f"cannot read the {what} {path}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if stat.S_ISDIR(st.st_mode):
            return None
        if not stat.S_ISREG(st.st_mode):
            raise ContextError(f"the {what} {path} is not a regular file")
        if st.st_size > _MAX_READ:
            raise ContextError(f"the {what} {path} is larger than {_MAX_READ >> 20} MiB")
        return f.read(_MAX_READ + 1)


def _remove_tree(path: Path) -> None:
    """Remove a temp tree even when it holds read-only directories (tar modes are kept)."""
    def retry(func: Callable[..., object], name: str, _exc: object) -> None:
        try:
            os.chmod(os.path.dirname(name), 0o700)
            func(name)
        except OSError:
            pass

    shutil.rmtree(path, onerror=retry)


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# -- opening contexts ------------------------------------------------------------------------
def open_context(spec: str, *, sub_path: str | None = None,
                 stdin: BinaryIO | None = None, tmp_dir: Path | None = None) -> BuildContext:
    """Open ``--context`` (``.``, ``/abs``, ``dir://P``, ``tar://stdin``, ``tar://P``, git URL,
    or a remote tarball: ``https://.../ctx.tar.gz``, ``s3://``, ``gs://``, Azure Blob); tar, git
    and remote contexts are unpacked below ``tmp_dir`` (default: the system temp dir)."""
    from trustbuild.builder.remote_context import download_remote_context, remote_kind

    ctx: BuildContext
    remote = remote_kind(spec)
    git = None if spec.startswith("tar://") or remote else parse_git_url(spec)
    if remote:
        tmp = Path(tempfile.mkdtemp(prefix="trustbuild-remote-context-", dir=tmp_dir))
        try:
            tar_path, source = download_remote_context(spec, tmp)
            ctx = _open_tar(str(tar_path), None, tmp_dir)
            ctx.source = source
        finally:
            _remove_tree(tmp)
    elif spec.startswith("tar://"):
        ctx = _open_tar(spec[len("tar://"):], stdin, tmp_dir)
    elif git is not None:
        ctx = _open_git(git, tmp_dir)
    elif spec.startswith("dir://"):
        ctx = _open_dir(spec[len("dir://"):] or ".")
    elif re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", spec):
        raise ContextError(f"unsupported build context {_redact(spec)!r}: use a directory, "
                           "dir://PATH, tar://stdin, tar://PATH, a git URL, an https:// "
                           "tarball, s3://, gs:// or an Azure blob URL")
    else:
        ctx = _open_dir(spec or ".")
    try:
        sub = sub_path or (git.subdir if git is not None else None)
        if sub:
            rel = go_clean(sub.lstrip("/"))
            if rel == ".." or rel.startswith("../"):
                raise ContextError(f"context sub-path {sub!r} leaves the build context")
            root = (ctx.root / rel).resolve()
            if not root.is_relative_to(ctx.root.resolve()) or not root.is_dir():
                raise ContextError(f"context sub-path {sub!r} is not a directory inside the "
                                   "build context")
            ctx.root = root
        ctx.load_ignore("Dockerfile")
    except BaseException:
        ctx.close()
        raise
    return ctx


def _open_dir(path: str) -> BuildContext:
    root = Path(path).resolve()
    if not root.is_dir():
        raise ContextError(f"build context {path!r} is not a directory")
    return BuildContext(root=root, source=f"dir://{root}")


def _open_tar(target: str, stdin: BinaryIO | None, tmp_dir: Path | None = None) -> BuildContext:
    tmp = Path(tempfile.mkdtemp(prefix="trustbuild-context-", dir=tmp_dir))
    root = tmp / "context"
    root.mkdir()
    try:
        if target == "stdin":
            stream = stdin if stdin is not None else sys.stdin.buffer
            _extract_tar(stream, root)
            source = "tar://stdin"
        else:
            tar_path = Path(target).resolve()
            if not tar_path.is_file():
                raise ContextError(f"build context tar {target!r} is not a file")
            with open(tar_path, "rb") as f:
                _extract_tar(f, root)
            source = f"tar://{tar_path}"
    except BaseException:
        _remove_tree(tmp)
        raise
    return BuildContext(root=root, source=source, tempdir=tmp)


def _extract_tar(stream: BinaryIO, dest: Path) -> None:
    """Extract a (compressed) tar stream into ``dest`` with the layer extractor: nothing lands
    outside it, no entry goes through a symlink, no devices, FIFOs, owners or xattrs."""
    try:
        from trustbuild.oci.extract import extract_layer  # a tar context only

        extract_layer(stream, dest, what="build context tar", allow_devices=False,
                      same_owner=False, whiteouts=False, follow_symlinks=False, fifos=False,
                      xattrs=False)
    except StoreError as exc:
        raise ContextError(f"build context is not a valid tar or tar.gz: {exc}") from None
    except BuildError as exc:
        raise ContextError(f"cannot extract the build context: {exc}") from None


# -- git -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GitSource:
    """A git context: ``URL#REF[:SUBDIR][#COMMIT]``."""

    url: str  # what git clones
    ref: str | None
    commit: str | None
    subdir: str | None
    spec: str  # the --context value, credentials removed


def parse_git_url(spec: str) -> GitSource | None:
    """Parse a git context, or return None when ``spec`` is not one.

    ``git://host/repo.git#REF[#COMMIT]`` is fetched over https like Kaniko does
    (``GIT_PULL_METHOD=http`` selects http); ``https://``/``http://``/``ssh://``/``git@host:``
    URLs are fetched as written; ``git+file:///path`` and ``file:///path`` name a local repo.
    """
    base, _, fragment = spec.partition("#")
    if base.startswith("git://"):
        method = os.environ.get("GIT_PULL_METHOD", "https").lower()
        if method not in ("https", "http"):
            method = "https"
        url = f"{method}://{base[len('git://'):]}"
    elif re.match(r"^git\+(https?|ssh|file)://", base):
        url = base[len("git+"):]
    elif re.match(r"^(https?|ssh|file)://", base) or re.match(r"^[\w.-]+@[\w.-]+:", base):
        url = base
    else:
        return None
    if url.startswith("-"):
        return None
    ref = commit = subdir = None
    if fragment:
        first, _, commit_part = fragment.partition("#")
        ref_part, _, sub_part = first.partition(":")
        ref = ref_part or None
        subdir = sub_part or None
        commit = commit_part or None
    for value in (ref, commit):
        if value is not None and (value.startswith("-") or any(c.isspace() for c in value)):
            raise ContextError(f"invalid git reference {value!r} in {_redact(spec)!r}")
    return GitSource(url=url, ref=ref, commit=commit, subdir=subdir, spec=_redact(spec))


def _redact(url: str) -> str:
    return re.sub(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@]*@", rf"\1{REDACTED}@", url)


def _transport(url: str) -> str:
    """The git transport ``url`` uses: https, http, ssh or file (parse_git_url admits no other)."""
    m = re.match(r"^([a-z]+)://", url)
    return m.group(1) if m else "ssh"  # git@host:path is ssh


def _git(args: list[str], *, cwd: Path, what: str, allow: str) -> str:
    """Run git with only the transports in ``allow`` (colon-separated; "none" for none).

    GIT_ALLOW_PROTOCOL overrides every protocol.*.allow setting, including one inherited from
    the caller's environment; ``ext::`` and anything not listed is refused.
    """
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true",
           "GIT_CONFIG_NOSYSTEM": "1", "GIT_ALLOW_PROTOCOL": allow, "GIT_PROTOCOL_FROM_USER": "0"}
    try:
        proc = subprocess.run(["git", "-c", "advice.detachedHead=false", *args], cwd=cwd,
                              env=env, capture_output=True, text=True, timeout=600)
    except FileNotFoundError:
        raise ContextError("git context needs the git command, which is not installed") from None
    except subprocess.TimeoutExpired:
        raise ContextError(f"git {what} timed out") from None
    if proc.returncode != 0:
        detail = _redact(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "")
        raise ContextError(f"git {what} failed: {detail}")
    return proc.stdout.strip()


def _open_git(src: GitSource, tmp_dir: Path | None = None) -> BuildContext:
    """Clone ``src`` into a temporary directory (below ``tmp_dir`` if given).

    Only the transport the user named is allowed for the fetch; submodules may use it too,
    except ``file``: a repository's ``.gitmodules`` must never pull a repository of the build
    host into the image (CVE-2022-39253 class).
    """
    transport = _transport(src.url)
    allow = "http:https" if transport == "http" else transport
    sub_allow = "none" if transport == "file" else allow
    tmp = Path(tempfile.mkdtemp(prefix="trustbuild-git-", dir=tmp_dir))
    tree = tmp / "tree"
    try:
        _git(["init", "-q", f"--separate-git-dir={tmp / 'git'}", str(tree)], cwd=tmp,
             what="init", allow="none")
        fetch = ["fetch", "-q", "--no-tags"]
        if src.commit is None:
            fetch.append("--depth=1")
        _git([*fetch, "--", src.url, src.ref or "HEAD"], cwd=tree,
             what=f"fetch of {src.spec} (ref {src.ref or 'HEAD'})", allow=allow)
        _git(["checkout", "-q", "--detach", "FETCH_HEAD"], cwd=tree, what="checkout",
             allow="none")
        if src.commit is not None:
            _git(["checkout", "-q", "--detach", src.commit], cwd=tree,
                 what=f"checkout of commit {src.commit} (it must be reachable from the ref)",
                 allow="none")
        commit = _git(["rev-parse", "HEAD"], cwd=tree, what="rev-parse", allow="none")
        if (tree / ".gitmodules").exists():
            _git(["submodule", "update", "--init", "--recursive", "--depth=1"], cwd=tree,
                 what=f"submodule update (submodules may only use {sub_allow.replace(':', '/')}"
                      f" here, never file paths of the build host)", allow=sub_allow)
        (tree / ".git").unlink()
    except BaseException:
        _remove_tree(tmp)
        raise
    return BuildContext(root=tree, source=src.spec, git_commit=commit, tempdir=tmp)


# -- the Dockerfile --------------------------------------------------------------------------
def read_dockerfile(spec: str | None, context: BuildContext, *,
                    stdin: BinaryIO | None = None) -> tuple[str, str]:
    """Return (name for messages, text) of ``--dockerfile``; ``-`` reads standard input.

    A relative path is looked up in the context, then in the working directory. A path inside
    the context is read with the context's resolver (its symlinks stay inside the context); a
    path outside it is the user's explicit choice and read as given (as Kaniko does). When a
    ``<Dockerfile>.dockerignore`` sits next to the chosen file, ``context.ignore`` switches to it.
    """
    if spec == "-":
        if context.source == "tar://stdin":
            raise ContextError("cannot read both the context and the Dockerfile from standard "
                               "input")
        data = (stdin if stdin is not None else sys.stdin.buffer).read()
        return "Dockerfile", _decode(data, "Dockerfile (stdin)")
    name = spec or "Dockerfile"
    given = Path(name)
    candidates = [given] if given.is_absolute() else [context.root / given, Path.cwd() / given]
    for cand in candidates:
        rel = _inside(context.root, cand)
        if rel is not None:
            data = context.read_file(rel, what="Dockerfile")
            if data is None:
                continue
            context.load_ignore(rel)
            return name, _decode(data, name)
        if cand.is_file():
            data = _read_regular(Path(os.path.realpath(cand)), what="Dockerfile")
            if data is not None:
                context.load_ignore(Path(os.path.abspath(cand)))
                return name, _decode(data, name)
    raise ContextError(f"Dockerfile {name!r} not found in the build context ({context.source})"
                       " or the working directory; pass --dockerfile")


def _inside(root: Path, path: Path) -> str | None:
    """``path`` relative to the context ``root`` when it names something inside, else None.

    Decided on the path as written, then with its directory's symlinks resolved on the host
    (``--dockerfile /link-to-ctx/Dockerfile``); the last component is never followed here.
    """
    lexical = Path(os.path.normpath(os.path.abspath(path)))
    for cand in (lexical, Path(os.path.realpath(lexical.parent)) / lexical.name):
        if cand == root:
            return "."
        if cand.is_relative_to(root):
            return cand.relative_to(root).as_posix()
    return None


def _decode(data: bytes, name: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DockerfileError(f"not UTF-8 text ({exc.reason} at byte {exc.start})",
                              path=name) from None

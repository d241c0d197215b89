"""Build contexts: directories, tar (stdin, gzip, file), git; sources; ignore; digest."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
import tempfile
from pathlib import Path

import pytest

from trustbuild.builder.context import (
    BuildContext,
    ContextError,
    open_context,
    parse_git_url,
    read_dockerfile,
)
from trustbuild.errors import DockerfileError


@pytest.fixture()
def ctx_dir(tmp_path: Path) -> Path:
    root = tmp_path / "ctx"
    (root / "dir" / "sub").mkdir(parents=True)
    (root / "hello.txt").write_text("hello\n")
    (root / "world.txt").write_text("world\n")
    (root / "dir" / "a.txt").write_text("a\n")
    (root / "dir" / "sub" / "deep.txt").write_text("deep\n")
    (root / "Dockerfile").write_text("FROM scratch\nCOPY . /\n")
    return root


@pytest.fixture()
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Temporary directories made by contexts go here, so a test can see what was left."""
    where = tmp_path / "tmpdirs"
    where.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(where))
    return where


def names(ctx: BuildContext, paths: list[Path]) -> list[str]:
    return [ctx.relpath(p) for p in paths]


def test_dir_context_sources_and_globs(ctx_dir: Path) -> None:
    with open_context(str(ctx_dir)) as ctx:
        assert ctx.root == ctx_dir.resolve()
        assert ctx.source == f"dir://{ctx_dir.resolve()}"
        assert ctx.git_commit is None
        res = ctx.resolve_sources
        assert names(ctx, res("hello.txt", line=2, path="Dockerfile")) == ["hello.txt"]
        assert names(ctx, res("/dir/", line=2, path="Dockerfile")) == ["dir"]
        assert names(ctx, res(".", line=2, path="Dockerfile")) == ["."]
        assert names(ctx, res("*.txt", line=2, path="Dockerfile")) == ["hello.txt", "world.txt"]
        assert names(ctx, res("dir/*/deep.txt", line=2, path="Dockerfile")) == [
            "dir/sub/deep.txt"]
        assert names(ctx, res("**/*.txt", line=2, path="Dockerfile")) == [
            "dir/a.txt", "dir/sub/deep.txt", "hello.txt", "world.txt"]
        assert names(ctx, res("h?llo.[a-z]xt", line=2, path="Dockerfile")) == ["hello.txt"]
        assert names(ctx, res("dir/../hello.txt", line=2, path="Dockerfile")) == ["hello.txt"]


@pytest.mark.parametrize(("pattern", "message"), [
    ("missing.txt", r"Dockerfile:7 COPY: COPY failed: file not found in build context or "
                    r"excluded by \.dockerignore: missing.txt"),
    ("*.nothing", "no source files were specified"),
    ("../outside", "forbidden path outside the build context"),
    ("dir/../../x", "forbidden path outside the build context"),
])
def test_source_errors_name_line(ctx_dir: Path, pattern: str, message: str) -> None:
    with open_context(f"dir://{ctx_dir}") as ctx:
        with pytest.raises(DockerfileError, match=message):
            ctx.resolve_sources(pattern, line=7, path="Dockerfile")


def test_symlinks_escaping_the_context_are_refused(ctx_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("s3cret\n")
    os.symlink("/etc/passwd", ctx_dir / "abs-link")
    os.symlink("../secret", ctx_dir / "rel-out")
    os.symlink("../../", ctx_dir / "dir" / "up")
    os.symlink("hello.txt", ctx_dir / "ok-link")
    os.symlink("sub", ctx_dir / "dir" / "sub-link")
    os.symlink("../dir/sub-link/deep.txt", ctx_dir / "dir" / "chain")
    with open_context(str(ctx_dir)) as ctx:
        for bad, message in [("abs-link", "is absolute and points outside"),
                             ("rel-out", "forbidden path outside"),
                             ("dir/up/secret", "forbidden path outside"),
                             ("abs-link/x", "is absolute")]:
            with pytest.raises(DockerfileError, match=message) as info:
                ctx.resolve_sources(bad, line=3, path="Dockerfile", instruction="ADD")
            assert str(info.value).startswith("Dockerfile:3 ADD: ")
        assert names(ctx, ctx.resolve_sources("ok-link", line=3, path="D")) == ["ok-link"]
        assert names(ctx, ctx.resolve_sources("dir/sub-link/deep.txt", line=3, path="D")) == [
            "dir/sub-link/deep.txt"]
        assert names(ctx, ctx.resolve_sources("dir/chain", line=3, path="D")) == ["dir/chain"]
        with pytest.raises(DockerfileError, match="points outside|absolute"):
            ctx.resolve_sources("*-link", line=3, path="D")


def test_dockerignore_filters_sources_and_walks(ctx_dir: Path) -> None:
    (ctx_dir / ".dockerignore").write_text("*.txt\n!world.txt\ndir\n!dir/sub/deep.txt\n")
    with open_context(str(ctx_dir)) as ctx:
        with pytest.raises(DockerfileError, match="excluded by .dockerignore: hello.txt"):
            ctx.resolve_sources("hello.txt", line=2, path="Dockerfile")
        assert names(ctx, ctx.resolve_sources("*.txt", line=2, path="D")) == ["world.txt"]
        # dir is excluded but holds a re-included file: still a source
        assert names(ctx, ctx.resolve_sources("dir", line=2, path="D")) == ["dir"]
        assert names(ctx, list(ctx.iter_included())) == [
            ".dockerignore", "Dockerfile", "dir", "dir/sub", "dir/sub/deep.txt", "world.txt"]
        assert names(ctx, list(ctx.iter_included(ctx.root / "dir"))) == [
            "dir/sub", "dir/sub/deep.txt"]
        assert ctx.excluded_path(ctx.root / "dir" / "a.txt")


def test_digest_covers_included_content_only(ctx_dir: Path) -> None:
    def digest() -> str:
        with open_context(str(ctx_dir)) as ctx:
            return ctx.digest()

    first = digest()
    assert first.startswith("sha256:") and len(first) == 71
    assert digest() == first
    os.utime(ctx_dir / "hello.txt", (1, 1))
    assert digest() == first  # mtimes are not part of the digest
    (ctx_dir / "hello.txt").write_text("changed\n")
    changed = digest()
    assert changed != first
    (ctx_dir / "hello.txt").chmod(0o600)
    assert digest() != changed
    (ctx_dir / ".dockerignore").write_text("ignored.bin\n")
    with_ignore = digest()
    (ctx_dir / "ignored.bin").write_bytes(b"x" * 10)
    assert digest() == with_ignore


def _tar_bytes(entries: list[tuple[str, str, bytes | str]], *, gzip: bool = True) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz" if gzip else "w") as tf:
        for name, kind, data in entries:
            info = tarfile.TarInfo(name)
            info.mtime = 1_700_000_000
            if kind == "file":
                assert isinstance(data, bytes)
                info.size = len(data)
                info.mode = 0o750
                tf.addfile(info, io.BytesIO(data))
            elif kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tf.addfile(info)
            elif kind == "sym":
                info.type, info.linkname = tarfile.SYMTYPE, str(data)
                tf.addfile(info)
            elif kind == "hard":
                info.type, info.linkname = tarfile.LNKTYPE, str(data)
                tf.addfile(info)
    return buf.getvalue()


def test_tar_stdin_gzip(tmp_path: Path) -> None:
    data = _tar_bytes([("./Dockerfile", "file", b"FROM scratch\n"), ("app", "dir", b""),
                       ("app/run.sh", "file", b"#!/bin/sh\n"), ("app/link", "sym", "run.sh"),
                       ("app/hard", "hard", "app/run.sh"), ("/abs/name.txt", "file", b"x")])
    ctx = open_context("tar://stdin", stdin=io.BytesIO(data))
    try:
        assert ctx.source == "tar://stdin"
        assert ctx.tempdir is not None and ctx.tempdir.is_dir()
        assert (ctx.root / "app" / "run.sh").read_bytes() == b"#!/bin/sh\n"
        assert (ctx.root / "app" / "run.sh").stat().st_mode & 0o777 == 0o750
        assert os.readlink(ctx.root / "app" / "link") == "run.sh"
        assert (ctx.root / "app" / "hard").stat().st_ino == (ctx.root / "app" / "run.sh").stat(
        ).st_ino
        assert (ctx.root / "abs" / "name.txt").read_bytes() == b"x"
        assert read_dockerfile(None, ctx) == ("Dockerfile", "FROM scratch\n")
        with pytest.raises(ContextError, match="both the context and the Dockerfile"):
            read_dockerfile("-", ctx, stdin=io.BytesIO(b""))
        temp = ctx.tempdir
    finally:
        ctx.close()
    assert not temp.exists()


def test_tar_file_plain(tmp_path: Path) -> None:
    tar = tmp_path / "ctx.tar"
    tar.write_bytes(_tar_bytes([("Dockerfile", "file", b"FROM scratch\n")], gzip=False))
    with open_context(f"tar://{tar}") as ctx:
        assert ctx.source == f"tar://{tar}"
        assert (ctx.root / "Dockerfile").is_file()


@pytest.mark.parametrize("entries", [
    [("../evil", "file", b"x")],
    [("a/../../evil", "file", b"x")],
    [("link", "sym", "/tmp"), ("link/evil", "file", b"x")],
    [("h", "hard", "../../etc/passwd")],
    [("h", "hard", "/etc/passwd")],
    [("d", "sym", "/etc"), ("h", "hard", "d/passwd")],
    [("d", "sym", "."), ("f", "file", b"x"), ("h", "hard", "d/f")],
])
def test_tar_escapes_refused(private_tmp: Path,
                             entries: list[tuple[str, str, bytes | str]]) -> None:
    with pytest.raises(ContextError):
        open_context("tar://stdin", stdin=io.BytesIO(_tar_bytes(entries)))
    assert list(private_tmp.iterdir()) == []  # nothing extracted anywhere, temp dir removed
    assert not (private_tmp.parent / "evil").exists()


def test_tar_directory_modes_applied_after_contents() -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        ro = tarfile.TarInfo("ro")
        ro.type, ro.mode = tarfile.DIRTYPE, 0o555
        tf.addfile(ro)
        f = tarfile.TarInfo("ro/f")
        f.size, f.mode = 1, 0o4755
        tf.addfile(f, io.BytesIO(b"x"))
    with open_context("tar://stdin", stdin=io.BytesIO(buf.getvalue())) as ctx:
        assert (ctx.root / "ro").stat().st_mode & 0o7777 == 0o555
        assert (ctx.root / "ro" / "f").stat().st_mode & 0o7777 == 0o4755
        temp = ctx.tempdir
    assert temp is not None and not temp.exists()


def test_tar_later_entries_replace_earlier_ones() -> None:
    data = _tar_bytes([("a", "dir", b""), ("a/x", "file", b"1"), ("a", "dir", b""),
                       ("b", "dir", b""), ("b/y", "file", b"2"), ("b", "file", b"now a file"),
                       ("c", "file", b"old"), ("c", "file", b"new")])
    with open_context("tar://stdin", stdin=io.BytesIO(data)) as ctx:
        assert (ctx.root / "a" / "x").read_bytes() == b"1"
        assert (ctx.root / "b").read_bytes() == b"now a file"
        assert (ctx.root / "c").read_bytes() == b"new"


def test_tar_garbage_is_a_clear_error() -> None:
    with pytest.raises(ContextError, match="not a valid tar"):
        open_context("tar://stdin", stdin=io.BytesIO(b"not a tar at all" * 100))


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com",
                           "-c", "init.defaultBranch=main", *args], cwd=cwd, check=True,
                          capture_output=True, text=True).stdout.strip()


@pytest.fixture()
def git_repo(tmp_path: Path) -> tuple[Path, str, str]:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "Dockerfile").write_text("FROM scratch\nCOPY v.txt /\n")
    (repo / "v.txt").write_text("one\n")
    (repo / "sub").mkdir()
    (repo / "sub" / "Dockerfile").write_text("FROM scratch\n")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "one")
    first = _git(repo, "rev-parse", "HEAD")
    _git(repo, "tag", "v1")
    (repo / "v.txt").write_text("two\n")
    _git(repo, "commit", "-q", "-am", "two")
    second = _git(repo, "rev-parse", "HEAD")
    _git(repo, "branch", "feature")
    return repo, first, second


def test_git_context_branch_tag_commit_subdir(git_repo: tuple[Path, str, str]) -> None:
    repo, first, second = git_repo
    with open_context(f"git+file://{repo}#main") as ctx:
        assert ctx.git_commit == second
        assert (ctx.root / "v.txt").read_text() == "two\n"
        assert not (ctx.root / ".git").exists()
        assert ctx.source == f"git+file://{repo}#main"
        temp = ctx.tempdir
    assert temp is not None and not temp.exists()
    with open_context(f"file://{repo}#v1") as ctx:
        assert ctx.git_commit == first
        assert (ctx.root / "v.txt").read_text() == "one\n"
    with open_context(f"file://{repo}#refs/heads/feature#{first}") as ctx:
        assert ctx.git_commit == first
    with open_context(f"file://{repo}#{first}") as ctx:  # a commit as the ref
        assert ctx.git_commit == first
        assert (ctx.root / "v.txt").read_text() == "one\n"
    with open_context(f"file://{repo}#main:sub") as ctx:
        assert ctx.root.name == "sub"
        assert read_dockerfile(None, ctx)[1] == "FROM scratch\n"
    with open_context(f"file://{repo}", sub_path="sub") as ctx:
        assert ctx.git_commit == second and ctx.root.name == "sub"


def test_git_context_errors(git_repo: tuple[Path, str, str], private_tmp: Path) -> None:
    repo, _, _ = git_repo
    with pytest.raises(ContextError, match="git fetch of .* failed"):
        open_context(f"file://{repo}#no-such-branch")
    with pytest.raises(ContextError, match="checkout of commit"):
        open_context(f"file://{repo}#main#{'0' * 40}")
    with pytest.raises(ContextError, match="invalid git reference"):
        open_context(f"file://{repo}#--upload-pack=touch")
    assert list(private_tmp.iterdir()) == []


@pytest.mark.parametrize(("spec", "url", "ref", "commit", "subdir", "shown"), [
    ("git://github.com/acme/p.git#refs/heads/b#abc123", "https://github.com/acme/p.git",
     "refs/heads/b", "abc123", None, "git://github.com/acme/p.git#refs/heads/b#abc123"),
    ("git://host/r.git", "https://host/r.git", None, None, None, "git://host/r.git"),
    ("https://host/r.git#v1.0:docker", "https://host/r.git", "v1.0", None, "docker",
     "https://host/r.git#v1.0:docker"),
    ("https://user:tok@host/r.git#main", "https://user:tok@host/r.git", "main", None, None,
     "https://<redacted>@host/r.git#main"),
    ("git@github.com:acme/p.git#dev", "git@github.com:acme/p.git", "dev", None, None,
     "git@github.com:acme/p.git#dev"),
    ("ssh://git@host/r.git", "ssh://git@host/r.git", None, None, None, "ssh://<redacted>@host/r.git"),
    ("git+file:///srv/r#main", "file:///srv/r", "main", None, None, "git+file:///srv/r#main"),
])
def test_parse_git_url(spec: str, url: str, ref: str | None, commit: str | None,
                       subdir: str | None, shown: str) -> None:
    git = parse_git_url(spec)
    assert git is not None
    assert (git.url, git.ref, git.commit, git.subdir, git.spec) == (url, ref, commit, subdir,
                                                                    shown)


def test_git_pull_method_http(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_PULL_METHOD", "http")
    git = parse_git_url("git://host/r.git")
    assert git is not None and git.url == "http://host/r.git"


@pytest.mark.parametrize("spec", [".", "/abs/dir", "dir://x", "tar://stdin", "relative/dir",
                                  "git+ext::sh -c touch% /tmp/pwned", "ext::sh"])
def test_not_git(spec: str) -> None:
    assert parse_git_url(spec) is None


def test_open_errors(tmp_path: Path, ctx_dir: Path) -> None:
    with pytest.raises(ContextError, match="is not a directory"):
        open_context(str(tmp_path / "missing"))
    with pytest.raises(ContextError, match="unsupported build context 'ftp://b/k'"):
        open_context("ftp://b/k")  # s3://, gs:// and Azure are remote contexts now
    with pytest.raises(ContextError, match="leaves the build context"):
        open_context(str(ctx_dir), sub_path="../..")
    with pytest.raises(ContextError, match="not a directory inside"):
        open_context(str(ctx_dir), sub_path="hello.txt")
    with open_context(str(ctx_dir), sub_path="dir") as ctx:
        assert ctx.root == (ctx_dir / "dir").resolve()


def test_read_dockerfile_forms(ctx_dir: Path, tmp_path: Path,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    (ctx_dir / "docker").mkdir()
    (ctx_dir / "docker" / "Dockerfile.dev").write_text("FROM dev\n")
    (ctx_dir / ".dockerignore").write_text("hello.txt\n")
    outside = tmp_path / "Outside.Dockerfile"
    outside.write_text("FROM outside\n")
    with open_context(str(ctx_dir)) as ctx:
        assert read_dockerfile(None, ctx) == ("Dockerfile", "FROM scratch\nCOPY . /\n")
        assert ctx.ignore.excluded("hello.txt")
        assert read_dockerfile("docker/Dockerfile.dev", ctx) == ("docker/Dockerfile.dev",
                                                                 "FROM dev\n")
        assert read_dockerfile(str(outside), ctx)[1] == "FROM outside\n"
        assert read_dockerfile("-", ctx, stdin=io.BytesIO(b"FROM stdin\n")) == (
            "Dockerfile", "FROM stdin\n")
        monkeypatch.chdir(tmp_path)
        assert read_dockerfile("Outside.Dockerfile", ctx)[1] == "FROM outside\n"
        with pytest.raises(ContextError, match="'nope' not found"):
            read_dockerfile("nope", ctx)
        (ctx_dir / "docker" / "Dockerfile.dev.dockerignore").write_text("world.txt\n")
        read_dockerfile("docker/Dockerfile.dev", ctx)
        assert ctx.ignore.excluded("world.txt") and not ctx.ignore.excluded("hello.txt")
        (ctx_dir / "bad").write_bytes(b"FROM \xff\n")
        with pytest.raises(DockerfileError, match="bad: not UTF-8"):
            read_dockerfile("bad", ctx)


def test_bad_glob_is_a_dockerfile_error(ctx_dir: Path) -> None:
    with open_context(str(ctx_dir)) as ctx:
        with pytest.raises(DockerfileError, match=r"Dockerfile:4 COPY: .*bad pattern"):
            ctx.resolve_sources("dir/[a-", line=4, path="Dockerfile")


def _served_repo(served: Path, name: str, work: Path) -> None:
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(served / f"{name}.git")],
                   check=True, capture_output=True)


def _repo_with_submodule(tmp_path: Path, url: str, *, add: bool = True) -> Path:
    work = tmp_path / "app-src"
    work.mkdir()
    _git(work, "init", "-q")
    (work / "Dockerfile").write_text("FROM scratch\nCOPY . /\n")
    _git(work, "add", ".")
    _git(work, "commit", "-q", "-m", "app")
    if add:
        _git(work, "-c", "protocol.file.allow=always", "submodule", "add", "-q", url, "vendor")
        _git(work, "commit", "-q", "-m", "vendor")
    return work


@pytest.fixture()
def host_secret_repo(tmp_path: Path) -> Path:
    """A repository on the build host that a remote .gitmodules must never reach."""
    repo = tmp_path / "host-secret"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "secret.txt").write_text("host-only secret\n")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "secret")
    return repo


@pytest.mark.parametrize("form", ["file-url", "path"])
def test_remote_git_context_submodule_cannot_reach_host_repositories(
        git_http: tuple[Path, str], host_secret_repo: Path, tmp_path: Path,
        private_tmp: Path, monkeypatch: pytest.MonkeyPatch, form: str) -> None:
    """CVE-2022-39253 class: a remote .gitmodules pointing at a file path of the build host."""
    served, base = git_http
    url = f"file://{host_secret_repo}" if form == "file-url" else str(host_secret_repo)
    _served_repo(served, "app", _repo_with_submodule(tmp_path, url))
    monkeypatch.setenv("GIT_ALLOW_PROTOCOL", "file:http:https:ext")  # the caller's env: ignored
    with pytest.raises(ContextError, match="git submodule update .*never file paths"):
        open_context(f"{base}/app.git#main")
    assert list(private_tmp.iterdir()) == []  # nothing of the clone is left


def test_remote_git_context_submodule_ext_transport_is_refused(
        git_http: tuple[Path, str], tmp_path: Path) -> None:
    served, base = git_http
    marker = tmp_path / "ext-ran"
    work = _repo_with_submodule(tmp_path, f"{base}/none.git", add=False)
    head = _git(work, "rev-parse", "HEAD")
    (work / ".gitmodules").write_text(
        f'[submodule "vendor"]\n\tpath = vendor\n\turl = ext::sh -c touch% {marker}\n')
    _git(work, "update-index", "--add", "--cacheinfo", f"160000,{head},vendor")
    _git(work, "add", ".gitmodules")
    _git(work, "commit", "-q", "-m", "ext submodule")
    _served_repo(served, "app", work)
    with pytest.raises(ContextError, match="git submodule update"):
        open_context(f"{base}/app.git#main")
    assert not marker.exists()


def test_remote_git_context_submodule_over_the_same_transport(
        git_http: tuple[Path, str], tmp_path: Path) -> None:
    served, base = git_http
    lib = tmp_path / "lib-src"
    lib.mkdir()
    _git(lib, "init", "-q")
    (lib / "lib.txt").write_text("library\n")
    _git(lib, "add", ".")
    _git(lib, "commit", "-q", "-m", "lib")
    _served_repo(served, "lib", lib)
    _served_repo(served, "app", _repo_with_submodule(tmp_path, f"{base}/lib.git"))
    with open_context(f"{base}/app.git#main") as ctx:
        assert (ctx.root / "vendor" / "lib.txt").read_text() == "library\n"
        assert read_dockerfile(None, ctx)[1].startswith("FROM scratch")

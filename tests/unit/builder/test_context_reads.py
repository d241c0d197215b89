"""Files the builder reads itself from a context (Dockerfile, ignore files) stay in the context.

A Dockerfile or ignore file that is a symlink is resolved with the resolver COPY uses: a link
that leaves the context is refused, never followed on the host. ``--dockerfile`` naming a path
outside the context is the user's explicit choice and is read as given (as Kaniko does).
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from trustbuild.builder.context import ContextError, open_context, read_dockerfile

CANARY = "tb-canary-7f3a9c"


@pytest.fixture()
def ctx(tmp_path: Path) -> Path:
    root = tmp_path / "ctx"
    root.mkdir()
    (root / "a.txt").write_text("a\n")
    return root


@pytest.fixture()
def outside(tmp_path: Path) -> Path:
    out = tmp_path / "outside"
    out.mkdir()
    (out / "Dockerfile").write_text(f"FROM scratch\nLABEL secret={CANARY}\n")
    (out / "ignore").write_text("a.txt\n")
    return out


@pytest.mark.parametrize("link", ["/proc/self/environ", "../outside/Dockerfile",
                                  "sub/../../outside/Dockerfile"])
def test_dockerfile_symlink_leaving_the_context_is_refused(ctx: Path, outside: Path,
                                                           link: str) -> None:
    (ctx / "sub").mkdir()
    os.symlink(link, ctx / "Dockerfile")
    with open_context(str(ctx)) as c:
        for spec in (None, "Dockerfile", str(ctx / "Dockerfile")):
            with pytest.raises(ContextError, match="cannot read the Dockerfile") as info:
                read_dockerfile(spec, c)
            assert CANARY not in str(info.value)


def test_dockerfile_directory_symlink_leaving_the_context_is_refused(ctx: Path,
                                                                     outside: Path) -> None:
    os.symlink(str(outside), ctx / "docker")
    with open_context(str(ctx)) as c:
        with pytest.raises(ContextError, match="absolute and points outside"):
            read_dockerfile("docker/Dockerfile", c)


def test_dockerfile_symlinks_inside_the_context_are_followed(ctx: Path) -> None:
    (ctx / "docker").mkdir()
    (ctx / "docker" / "Dockerfile.real").write_text("FROM scratch\n")
    os.symlink("docker/Dockerfile.real", ctx / "Dockerfile")
    os.symlink("docker", ctx / "d")
    with open_context(str(ctx)) as c:
        assert read_dockerfile(None, c) == ("Dockerfile", "FROM scratch\n")
        assert read_dockerfile("d/Dockerfile.real", c)[1] == "FROM scratch\n"


def test_dockerfile_outside_the_context_given_explicitly_is_read(ctx: Path,
                                                                 outside: Path) -> None:
    (outside / "Dockerfile.dockerignore").write_text("a.txt\n")
    with open_context(str(ctx)) as c:
        assert CANARY in read_dockerfile(str(outside / "Dockerfile"), c)[1]
        assert c.ignore.excluded("a.txt")  # its own <Dockerfile>.dockerignore applies


@pytest.mark.parametrize("name", [".dockerignore", "Dockerfile.dockerignore"])
@pytest.mark.parametrize("link", ["/proc/self/environ", "../outside/ignore"])
def test_ignore_file_symlink_leaving_the_context_is_refused(ctx: Path, outside: Path,
                                                            name: str, link: str) -> None:
    (ctx / "Dockerfile").write_text("FROM scratch\n")
    os.symlink(link, ctx / name)
    with pytest.raises(ContextError, match="cannot read the ignore file"):
        with open_context(str(ctx)) as c:
            read_dockerfile(None, c)


def test_ignore_file_symlink_inside_the_context_is_followed(ctx: Path) -> None:
    (ctx / "Dockerfile").write_text("FROM scratch\n")
    (ctx / "ignore-rules").write_text("a.txt\n")
    os.symlink("ignore-rules", ctx / ".dockerignore")
    with open_context(str(ctx)) as c:
        assert c.ignore.excluded("a.txt")


def test_dockerfile_specific_ignore_file_wins(ctx: Path) -> None:
    (ctx / ".dockerignore").write_text("general\n")
    (ctx / "sub").mkdir()
    (ctx / "sub" / "Dockerfile.dev").write_text("FROM scratch\n")
    with open_context(str(ctx)) as c:
        read_dockerfile("sub/Dockerfile.dev", c)
        assert c.ignore.excluded("general") and not c.ignore.excluded("specific")
    (ctx / "sub" / "Dockerfile.dev.dockerignore").write_text("specific\n")
    with open_context(str(ctx)) as c:
        read_dockerfile("sub/Dockerfile.dev", c)
        assert c.ignore.excluded("specific") and not c.ignore.excluded("general")


def test_dockerfile_fifo_is_an_error_not_a_hang(ctx: Path) -> None:
    os.mkfifo(ctx / "Dockerfile")
    with open_context(str(ctx)) as c:
        with pytest.raises(ContextError, match="not a regular file"):
            read_dockerfile(None, c)


def test_tar_context_dockerfile_symlink_is_resolved_inside(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info = tarfile.TarInfo("Dockerfile")
        info.type, info.linkname = tarfile.SYMTYPE, "/proc/self/environ"
        tf.addfile(info)
    with open_context("tar://stdin", stdin=io.BytesIO(buf.getvalue())) as c:
        with pytest.raises(ContextError, match="cannot read the Dockerfile"):
            read_dockerfile(None, c)


def test_build_with_environ_symlink_never_prints_the_environment(ctx: Path,
                                                                 tmp_path: Path) -> None:
    """The reported attack: ``Dockerfile -> /proc/self/environ`` printed the environment."""
    os.symlink("/proc/self/environ", ctx / "Dockerfile")
    env = {"TB_SIGNING_PASSWORD": CANARY, "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
           "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run(
        [sys.executable, "-m", "trustbuild.cli.main", "build", "--context", str(ctx),
         "--no-push", "--oci-layout-path", str(tmp_path / "layout")],
        env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert CANARY not in proc.stdout + proc.stderr
    assert "cannot read the Dockerfile" in proc.stderr
    assert not (tmp_path / "layout").exists()

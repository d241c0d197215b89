"""Unit tests of the executor's parts: rootfs paths, users, options, assembly, RUN argv."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from trustbuild._internal.users import resolve_user
from trustbuild.builder.assemble import assemble
from trustbuild.builder.config import ImageState, LayerRef
from trustbuild.builder.dockerfile import parse_dockerfile
from trustbuild.builder.executor import StageRun, predefined_args
from trustbuild.builder.handlers.run import run_argv
from trustbuild.builder.options import (
    BuildOptions,
    is_secret_name,
    parse_build_args,
    redact_build_args,
)
from trustbuild.builder.rootfs import clean_abs, mkdir_all, secure_join
from trustbuild.builder.users import resolve_chown
from trustbuild.errors import BuildError
from trustbuild.oci.descriptor import Descriptor, Platform
from trustbuild.oci.digest import Digest


def test_secure_join_keeps_symlinks_inside(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "real").mkdir(parents=True)
    os.symlink("/real", root / "abs")
    os.symlink("../../../../etc", root / "climb")
    assert secure_join(root, "/abs/file") == root / "real" / "file"
    assert secure_join(root, "/climb/passwd") == root / "etc" / "passwd"
    assert secure_join(root, "../../x") == root / "x"
    assert secure_join(root, "/abs", follow_last=False) == root / "abs"
    os.symlink("loop", root / "loop")
    with pytest.raises(BuildError, match="symbolic links"):
        secure_join(root, "/loop/x")


def test_mkdir_all_creates_with_owner_and_refuses_files(tmp_path: Path) -> None:
    created = mkdir_all(tmp_path, "/a/b/c", uid=12, gid=34)
    assert created == ["/a", "/a/b", "/a/b/c"]
    assert os.stat(tmp_path / "a" / "b").st_uid == 12
    (tmp_path / "file").write_text("x")
    with pytest.raises(BuildError, match="file is in the way"):
        mkdir_all(tmp_path, "/file/sub")
    assert clean_abs("x/../../y", workdir="/w") == "/y"
    assert clean_abs(".", workdir="/srv/app") == "/srv/app"


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n"
                                "app:x:1000:1001:app:/home/app:/bin/sh\n")
    (etc / "group").write_text("root:x:0:\napp:x:1001:\nstaff:x:50:\n")
    return tmp_path


def test_user_resolution(rootfs: Path) -> None:
    assert resolve_user(rootfs, "app").uid == 1000
    assert resolve_user(rootfs, "app").gid == 1001
    assert resolve_user(rootfs, "app").home == "/home/app"
    assert (resolve_user(rootfs, "app:staff").gid) == 50
    assert resolve_user(rootfs, "4242").gid == 0  # unknown numeric uid: gid 0
    assert resolve_user(rootfs, "1000:7").gid == 7
    with pytest.raises(BuildError, match="no user 'ghost'"):
        resolve_user(rootfs, "ghost")
    with pytest.raises(BuildError, match="no group 'nogroup'"):
        resolve_user(rootfs, "app:nogroup")


def test_chown_resolution(rootfs: Path) -> None:
    assert resolve_chown(rootfs, "33") == (33, 33)  # uid without gid: same number
    assert resolve_chown(rootfs, "app") == (1000, 1001)  # name: primary group
    assert resolve_chown(rootfs, "app:staff") == (1000, 50)
    assert resolve_chown(rootfs, "5:6") == (5, 6)


def test_build_args_and_redaction() -> None:
    args = parse_build_args(["A=1", "FROM_ENV", "MISSING", "A=2", "EMPTY="],
                            environ={"FROM_ENV": "env-value"})
    assert args == {"A": "2", "FROM_ENV": "env-value", "EMPTY": ""}
    for name in ("GITHUB_TOKEN", "db_password", "Api_Key", "aws_secret", "NPM_AUTH", "passwd",
                 "MY_CREDENTIALS"):
        assert is_secret_name(name), name
    assert not is_secret_name("VERSION")
    assert redact_build_args({"TOKEN": "t", "V": "1"}) == {"TOKEN": "<redacted>", "V": "1"}
    assert BuildOptions(reproducible=True).epoch() == 0
    assert BuildOptions(source_date_epoch=1700000000).epoch() == 1700000000
    assert BuildOptions().epoch() is None


def test_predefined_platform_args() -> None:
    args = predefined_args(Platform("linux", "arm64", "v8"), Platform("linux", "amd64"))
    assert args["TARGETPLATFORM"] == "linux/arm64/v8"
    assert args["TARGETARCH"] == "arm64" and args["TARGETVARIANT"] == "v8"
    assert args["BUILDOS"] == "linux" and args["BUILDARCH"] == "amd64"


def _layer(tmp_path: Path, mt: str) -> LayerRef:
    d = Digest.of(b"layer")
    return LayerRef(Descriptor(mt, d, 5), str(d), tmp_path / "blob")


def test_assemble_formats(tmp_path: Path) -> None:
    plat = Platform("linux", "amd64")
    state = ImageState.scratch(plat)
    state.add_layer(_layer(tmp_path, "application/vnd.oci.image.layer.v1.tar+gzip"))
    state.runtime.cmd = ["/bin/sh"]
    oci = assemble(state, created="1970-01-01T00:00:00Z", platform=plat, labels={"a": "b"})
    assert oci.media_type == "application/vnd.oci.image.manifest.v1+json"
    assert b'"Labels":{"a":"b"}' in oci.config_raw
    docker = assemble(state, created="1970-01-01T00:00:00Z", platform=plat, image_format="docker")
    assert docker.media_type == "application/vnd.docker.distribution.manifest.v2+json"
    assert docker.layers[0].descriptor.media_type == \
        "application/vnd.docker.image.rootfs.diff.tar.gzip"
    assert docker.layers[0].descriptor.digest == oci.layers[0].descriptor.digest
    zstd = ImageState.scratch(plat)
    zstd.add_layer(_layer(tmp_path, "application/vnd.oci.image.layer.v1.tar+zstd"))
    with pytest.raises(BuildError, match="--image-format oci"):
        assemble(zstd, created="1970-01-01T00:00:00Z", platform=plat, image_format="docker")


def test_env_order_follows_buildah() -> None:
    state = ImageState.scratch(Platform("linux", "amd64"))
    state.runtime.env = ["PATH=/bin", "KEEP=1"]
    state.set_env("A", "1")
    state.set_env("PATH", "/usr/bin:/bin")
    state.set_env("A", "2")
    assert state.runtime.env == ["KEEP=1", "A=2", "PATH=/usr/bin:/bin"]


def _stage(text: str) -> tuple[StageRun, list]:  # type: ignore[type-arg]
    df = parse_dockerfile(text)
    st = StageRun(stage=df.stages[0], rootfs=Path("/nonexistent"),
                  image=ImageState.scratch(Platform("linux", "amd64")))
    return st, df.stages[0].commands


def test_run_argv_forms() -> None:
    st, ins = _stage('FROM scratch\nRUN echo "a b"\nRUN ["/bin/echo", "x"]\n'
                     'SHELL ["/bin/bash", "-eu", "-c"]\nRUN <<EOF\necho one\necho two\nEOF\n'
                     'RUN cat <<EOF > /f\nbody $X\nEOF\n')
    assert run_argv(st, ins[0]) == ["/bin/sh", "-c", 'echo "a b"']
    assert run_argv(st, ins[1]) == ["/bin/echo", "x"]
    st.image.runtime.shell = ["/bin/bash", "-eu", "-c"]
    assert run_argv(st, ins[3]) == ["/bin/bash", "-eu", "-c", "echo one\necho two\n"]
    assert run_argv(st, ins[4]) == ["/bin/bash", "-eu", "-c", "cat <<EOF > /f\nbody $X\nEOF"]
    # two heredocs, the second <<- (tabs stripped) and quoted: each body, then its terminator
    st, ins = _stage("FROM scratch\nRUN python3 <<EOF > /out && cat <<-'X'\nprint(1)\nEOF\n"
                     "\tliteral $V\n\tX\n")
    assert run_argv(st, ins[0]) == [
        "/bin/sh", "-c", "python3 <<EOF > /out && cat <<-'X'\nprint(1)\nEOF\nliteral $V\nX"]


def test_cache_keys_and_repo() -> None:
    from trustbuild.builder.cache import cache_repo_for
    from trustbuild.builder.cachekey import chain_step, step_key
    from trustbuild.errors import UsageError

    a = chain_step("base", "COPY", "sha256:1")
    assert a != chain_step("base", "COPY", "sha256:2") and a == chain_step("base", "COPY",
                                                                            "sha256:1")
    assert chain_step("x", "ab", "c") != chain_step("x", "a", "bc")  # parts are separated
    spec = {"argv": ["/bin/sh", "-c", "make"], "env": {"A": "1"}}
    assert step_key(a, "RUN", spec) != step_key(a, "RUN", {**spec, "env": {"A": "2"}})
    assert len(step_key(a, "RUN", spec)) == 64
    assert cache_repo_for(None, ["127.0.0.1:5000/app:1"]) == "127.0.0.1:5000/app/cache"
    assert cache_repo_for("oci:/tmp/c", []) == "oci:/tmp/c"
    with pytest.raises(UsageError):
        cache_repo_for(None, [])

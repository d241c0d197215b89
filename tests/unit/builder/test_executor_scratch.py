"""Whole builds FROM scratch (no registry, no RUN) written to an OCI layout and read back."""

from __future__ import annotations

import gzip
import io
import json
import os
import tarfile
from pathlib import Path
from typing import Any

import pytest

from trustbuild.builder.api import build
from trustbuild.builder.options import BuildOptions
from trustbuild.errors import DockerfileError


def _build(tmp_path: Path, dockerfile: str, files: dict[str, str] | None = None,
           **kw: Any) -> tuple[dict[str, Any], dict[str, Any], list[list[tarfile.TarInfo]]]:
    ctx = tmp_path / "ctx"
    ctx.mkdir(parents=True, exist_ok=True)
    (ctx / "Dockerfile").write_text(dockerfile)
    for name, text in (files or {}).items():
        p = ctx / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    layout = tmp_path / "layout"
    opts = BuildOptions(context=str(ctx), oci_layout_path=str(layout), no_push=True,
                        output=io.StringIO(), **kw)
    with build(opts) as result:
        assert result.digest == str(result.descriptor.digest)
    index = json.loads((layout / "index.json").read_text())
    mdigest = index["manifests"][0]["digest"].split(":")[1]
    manifest = json.loads((layout / "blobs" / "sha256" / mdigest).read_text())
    config = json.loads((layout / "blobs" / "sha256" /
                         manifest["config"]["digest"].split(":")[1]).read_text())
    layers = []
    for layer in manifest["layers"]:
        blob = (layout / "blobs" / "sha256" / layer["digest"].split(":")[1]).read_bytes()
        with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob))) as tf:
            layers.append(tf.getmembers())
    return manifest, config, layers


def test_metadata_and_history(tmp_path: Path) -> None:
    _, cfg, layers = _build(tmp_path, """\
ARG NAME=global
FROM scratch AS base
ARG NAME
ARG OTHER=x${NAME}
ENV GREETING="hello $NAME" OTHER_COPY=$OTHER
ENV SEEN=$GREETING
LABEL a=1 "b c"="d e"
EXPOSE 80 53/udp
USER 10:20
WORKDIR app
WORKDIR sub/../data
VOLUME /v1 /v2
STOPSIGNAL SIGINT
HEALTHCHECK --interval=5s --retries=2 CMD ["/probe"]
SHELL ["/bin/ash", "-c"]
CMD run me
ENTRYPOINT ["/entry"]
ONBUILD COPY . /src
MAINTAINER someone
""", build_args={"NAME": "cli"})
    c = cfg["config"]
    assert "GREETING=hello cli" in c["Env"] and "OTHER_COPY=xcli" in c["Env"]
    assert "SEEN=hello cli" in c["Env"]
    assert c["Labels"] == {"a": "1", "b c": "d e"}
    assert c["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}}
    assert c["User"] == "10:20" and c["WorkingDir"] == "/app/data"
    assert c["Volumes"] == {"/v1": {}, "/v2": {}} and c["StopSignal"] == "SIGINT"
    assert c["Healthcheck"] == {"Test": ["CMD", "/probe"], "Interval": 5_000_000_000,
                                "Retries": 2}
    assert c["Shell"] == ["/bin/ash", "-c"]
    assert c["Entrypoint"] == ["/entry"]
    assert c["Cmd"] == ["/bin/ash", "-c", "run me"]  # set in this stage: kept
    assert c["OnBuild"] == ["COPY . /src"]
    assert cfg["author"] == "someone"
    # WORKDIR created directories, owned by the USER, in their own layers (+ parents)
    names = [[m.name for m in layer] for layer in layers]
    assert names == [["app"], ["app", "app/data"]]
    assert (layers[0][0].uid, layers[0][0].gid) == (10, 20)
    hist = cfg["history"]
    assert [h.get("empty_layer", False) for h in hist].count(False) == len(layers)
    assert len(cfg["rootfs"]["diff_ids"]) == 2


def test_copy_layers_hold_exactly_the_copied_entries(tmp_path: Path) -> None:
    _, cfg, layers = _build(tmp_path, """\
FROM scratch
COPY a.txt /deep/dir/a.txt
COPY --chown=5:6 --chmod=0600 b.txt c.txt /multi/
COPY d /d-contents
""", {"a.txt": "a", "b.txt": "b", "c.txt": "c", "d/e/f.txt": "f", "d/g.txt": "g"})
    assert [[m.name for m in layer] for layer in layers] == [
        ["deep", "deep/dir", "deep/dir/a.txt"],
        ["multi", "multi/b.txt", "multi/c.txt"],
        ["d-contents", "d-contents/e", "d-contents/e/f.txt", "d-contents/g.txt"],
    ]
    b = layers[1][1]
    assert (b.uid, b.gid, b.mode) == (5, 6, 0o600)
    assert (layers[1][0].uid, layers[1][0].gid) == (5, 6)  # created dest dir: --chown owner
    assert all((m.uid, m.gid) == (0, 0) for m in layers[0])
    assert cfg["history"][-1]["created_by"] == "COPY d /d-contents # buildkit"


def test_target_builds_only_needed_stages(tmp_path: Path) -> None:
    _, cfg, layers = _build(tmp_path, """\
FROM scratch AS a
COPY a.txt /a.txt
FROM scratch AS broken
COPY does-not-exist /x
FROM a AS b
COPY --from=a /a.txt /copied.txt
""", {"a.txt": "a"}, target="b")
    assert [[m.name for m in layer] for layer in layers] == [["a.txt"], ["copied.txt"]]


def test_reproducible_layout_digest_is_stable(tmp_path: Path) -> None:
    df = "FROM scratch\nCOPY a.txt /a.txt\nENV X=1\n"
    m1, c1, _ = _build(tmp_path / "one", df, {"a.txt": "a"}, reproducible=True)
    m2, c2, _ = _build(tmp_path / "two", df, {"a.txt": "a"}, reproducible=True)
    assert m1 == m2 and c1 == c2
    assert c1["created"] == "1970-01-01T00:00:00Z"


@pytest.mark.parametrize("dockerfile,message", [
    ("FROM scratch\nCOPY a b c\n", "Dockerfile:2 COPY.*must be a directory"),
    ("FROM scratch\nCOPY --chown=ghost a /a\n", "Dockerfile:2 COPY.*no user 'ghost'"),
    ("FROM scratch\nCOPY --chmod=999 a /a\n", "Dockerfile:2 COPY.*--chmod"),
    ("FROM scratch\nEXPOSE notaport\n", "Dockerfile:2 EXPOSE.*invalid port"),
    ("FROM scratch\nRUN --mount=type=secret,id=tok true\n", "Dockerfile:2 RUN.*type=secret"),
    ("FROM scratch\nRUN --mount=type=ssh true\n", "Dockerfile:2 RUN.*type=ssh"),
    ("FROM scratch\nRUN --mount=type=bind,source=../x,target=/x true\n",
     "Dockerfile:2 RUN.*outside the build context"),
    ("FROM scratch AS a\nFROM scratch\nCOPY --from=3 /x /x\n", "Dockerfile:3 COPY.*--from=3"),
])
def test_bad_instructions(tmp_path: Path, dockerfile: str, message: str) -> None:
    with pytest.raises(DockerfileError, match=message):
        _build(tmp_path, dockerfile, {"a": "a", "b": "b"})
    assert not (tmp_path / "layout").exists()


def test_copy_to_root_keeps_top_level_dot_files(tmp_path: Path) -> None:
    """Only .dockerignore excludes files: dot files at the top of the image are kept."""
    _, _, layers = _build(tmp_path, """\
FROM scratch
COPY . /
COPY .npmrc /..twice
""", {".gitignore": "g", ".npmrc": "n", ".dockerignore": "skip\n", ".config/x": "x",
      "skip": "s", "plain": "p"})
    assert [[m.name for m in layer] for layer in layers] == [
        [".config", ".config/x", ".dockerignore", ".gitignore", ".npmrc", "Dockerfile",
         "plain"],
        ["..twice"],
    ]


def test_arg_names_are_expanded(tmp_path: Path) -> None:
    """``ARG ${NAME}=value`` declares the expanded name, as Docker does (global and in stages)."""
    _, cfg, _ = _build(tmp_path, """\
ARG KIND=base
ARG ${KIND}_IMAGE=scratch
FROM ${base_IMAGE}
ARG PREFIX=APP
ARG ${PREFIX}_VERSION=1.2
ARG ${PREFIX}_FROM_CLI
ENV V=${APP_VERSION} C=${APP_FROM_CLI}
""", build_args={"APP_FROM_CLI": "cli"})
    assert "V=1.2" in cfg["config"]["Env"] and "C=cli" in cfg["config"]["Env"]


def test_copy_from_stage_symlink_source_keeps_its_name(tmp_path: Path) -> None:
    """COPY --from of a symlink copies the target's content under the link's name (Docker)."""
    d = tmp_path / "ctx" / "d"
    d.mkdir(parents=True)
    (d / "target.txt").write_text("content")
    os.symlink("target.txt", d / "link")
    os.symlink("/data/target.txt", d / "abs")
    _, _, layers = _build(tmp_path, """\
FROM scratch AS a
COPY d /data
FROM scratch
COPY --from=a /data/link /data/abs /out/
COPY --from=a /data/l* /glob/
COPY --from=a /data/link /renamed
""")
    out, glob, renamed = ({m.name: m for m in layer} for layer in layers)
    assert sorted(out) == ["out", "out/abs", "out/link"]
    assert out["out/link"].isfile() and out["out/link"].size == len("content")
    assert out["out/abs"].isfile() and out["out/abs"].size == len("content")
    assert sorted(glob) == ["glob", "glob/link"] and glob["glob/link"].isfile()
    assert sorted(renamed) == ["renamed"] and renamed["renamed"].isfile()


def test_volume_creates_missing_directories(tmp_path: Path) -> None:
    """A VOLUME that ends the stage (or is followed by a RUN) creates its missing directories
    (root, 0755, symlinks followed inside the rootfs) in a layer, as buildah does."""
    (tmp_path / "one" / "ctx" / "d").mkdir(parents=True)
    (tmp_path / "one" / "ctx" / "d" / "f").write_text("f")
    os.symlink("/real", tmp_path / "one" / "ctx" / "d" / "link")
    _, cfg, layers = _build(tmp_path / "one", """\
FROM scratch
COPY d /
USER 1000
VOLUME /vol/new /other /f /link/inside
""")
    assert cfg["config"]["Volumes"] == {"/vol/new": {}, "/other": {}, "/f": {},
                                        "/link/inside": {}}
    volume_layer = {m.name: m for m in layers[1]}
    assert sorted(volume_layer) == ["other", "real", "real/inside", "vol", "vol/new"]
    assert all(m.isdir() and (m.uid, m.gid, m.mode) == (0, 0, 0o755)
               for m in volume_layer.values())
    assert [h.get("empty_layer", False) for h in cfg["history"]] == [False, True, False]


def test_volume_directories_follow_buildahs_rule(tmp_path: Path) -> None:
    """Not created when neither a RUN nor the end of the stage follows, nor inside an earlier
    volume (buildah's Preserve rule); the config lists every volume."""
    _, cfg, layers = _build(tmp_path, """\
FROM scratch
VOLUME /early
LABEL a=b
VOLUME /early/sub /late
""")
    assert cfg["config"]["Volumes"] == {"/early": {}, "/early/sub": {}, "/late": {}}
    assert [[m.name for m in layer] for layer in layers] == [["late"]]


def test_workdir_through_symlink_creates_the_targets_parents(tmp_path: Path) -> None:
    """WORKDIR /link/sub with link -> /a/b/c and no /a: /a/b/c/sub is created in the rootfs."""
    d = tmp_path / "ctx" / "d"
    d.mkdir(parents=True)
    os.symlink("/a/b/c", d / "link")
    os.symlink("../../x/y", d / "up")  # climbs above / : stays at the root, like a chroot
    _, cfg, layers = _build(tmp_path, """\
FROM scratch
COPY d /
WORKDIR /link/sub
WORKDIR /up
""")
    assert cfg["config"]["WorkingDir"] == "/up"
    assert [[m.name for m in layer] for layer in layers[1:]] == [
        ["a", "a/b", "a/b/c", "a/b/c/sub"], ["x", "x/y"]]
    assert all(m.isdir() for layer in layers[1:] for m in layer)

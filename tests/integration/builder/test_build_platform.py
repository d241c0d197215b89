"""Platform selection from an index (--custom-platform), predefined platform ARGs, and base
layers pulled once per build."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import pytest
from fixtures.imagefs import fetch_dir, flatten, read_dir_image
from fixtures.images import write_multiarch_layout

from trustbuild.builder.api import build
from trustbuild.builder.options import BuildOptions
from trustbuild.oci.descriptor import Platform

pytestmark = [pytest.mark.slow, pytest.mark.interop]


@pytest.fixture(scope="module")
def multiarch(registry: object, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict]:
    host = registry.host  # type: ignore[attr-defined]
    d = tmp_path_factory.mktemp("multiarch")
    digests = write_multiarch_layout(d, tag="1")
    ref = f"{host}/platform/multi:1"
    subprocess.run(["skopeo", "copy", "--quiet", "--all", "--dest-tls-verify=false",
                    f"oci:{d}:1", f"docker://{ref}"], check=True, capture_output=True,
                   timeout=120)
    return ref, digests


DOCKERFILE = """\
ARG BASE
FROM ${BASE}
ARG TARGETARCH
ARG TARGETPLATFORM
ENV ARCH=${TARGETARCH} PLATFORM=${TARGETPLATFORM}
COPY marker /marker
"""


def _ctx(tmp_path: Path) -> Path:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    (ctx / "marker").write_text("m\n")
    return ctx


@pytest.mark.parametrize("which", ["host", "other"])
def test_platform_is_picked_from_the_index(which: str, multiarch: tuple[str, dict],
                                           tmp_path: Path, registry: object) -> None:
    ref, digests = multiarch
    host_plat = f"linux/{Platform.host().architecture}"
    plat = host_plat if which == "host" else next(p for p in digests if p not in
                                                  ("index", host_plat))
    dest = f"{registry.host}/platform/out-{which}:1"  # type: ignore[attr-defined]
    opts = BuildOptions(context=str(_ctx(tmp_path)), destinations=[dest], output=io.StringIO(),
                        build_args={"BASE": ref}, platform=Platform.parse(plat))
    with build(opts) as result:
        base = result.record.images[0]
        assert base.digest == digests[plat]
        assert base.index_digest == digests["index"]
        assert result.record.platform == plat
    d = fetch_dir(dest, tmp_path / "img")
    _, cfg = read_dir_image(d)
    assert cfg["architecture"] == plat.split("/")[1]
    assert f"ARCH={plat.split('/')[1]}" in cfg["config"]["Env"]
    assert f"PLATFORM={plat}" in cfg["config"]["Env"]
    fs = flatten(d)
    assert "/marker" in fs
    assert ("/arch" in fs) == (which == "other")
    assert ("/bin/busybox" in fs) == (which == "host")


def test_base_layers_are_pulled_once(busybox_base: str, registry: object, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        "ARG BASE\nFROM ${BASE} AS a\nFROM ${BASE} AS b\nCOPY --from=a /etc/passwd /a\n"
        f"COPY --from={busybox_base} /etc/group /g\nFROM b\nCOPY --from=a /etc/group /g2\n")
    host = registry.host  # type: ignore[attr-defined]
    layer = read_dir_image(fetch_dir(busybox_base, tmp_path / "base"))[0]["layers"][0]
    before = registry.log()  # type: ignore[attr-defined]
    opts = BuildOptions(context=str(ctx), destinations=[f"{host}/platform/once:1"],
                        output=io.StringIO(), build_args={"BASE": busybox_base})
    with build(opts) as result:
        pass
    log = registry.log()[len(before):]  # type: ignore[attr-defined]
    repo = busybox_base.split("/", 1)[1].rsplit(":", 1)[0]
    gets = [line for line in log.splitlines()
            if f'"GET /v2/{repo}/blobs/{layer["digest"]}' in line]
    assert len(gets) == 1, gets
    assert len({i.digest for i in result.record.images}) == 1

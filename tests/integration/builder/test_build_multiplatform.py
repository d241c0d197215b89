"""Multi-platform builds: --custom-platform linux/amd64,linux/arm64 -> one signed, attested
image index; the arm64 RUN really runs under qemu-user-static."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest
from fixtures.imagefs import _open_layer, fetch_dir, read_dir_image
from fixtures.images import ARM64_BUSYBOX, write_busybox_index

from trustbuild.builder.emulation import ensure_emulation
from trustbuild.cli.main import main
from trustbuild.errors import TrustbuildError
from trustbuild.oci.descriptor import Platform
from trustbuild.sign.keys import generate_key_pair

pytestmark = [pytest.mark.slow, pytest.mark.interop]

PASSWORD = b"multiarch"
DOCKERFILE = """\
ARG BASE
FROM --platform=$BUILDPLATFORM ${BASE} AS tools
ARG TARGETARCH
RUN uname -m > /build-arch && echo "$TARGETARCH" > /target-arch
FROM ${BASE}
ARG TARGETPLATFORM
ARG BUILDPLATFORM
RUN uname -m > /arch && echo "$TARGETPLATFORM $BUILDPLATFORM" > /platforms
COPY --from=tools /build-arch /target-arch /
COPY marker /marker
"""


def _skopeo(*args: str) -> str:
    return subprocess.run(["skopeo", "inspect", "--tls-verify=false", *args], check=True,
                          capture_output=True, text=True, timeout=60).stdout


def _files(d: Path) -> dict[str, str]:
    """Text of every regular file in the image in skopeo dir ``d`` (last layer wins)."""
    out: dict[str, str] = {}
    for layer in read_dir_image(d)[0]["layers"]:
        with _open_layer(d / layer["digest"].split(":", 1)[1]) as stream, \
                tarfile.open(fileobj=stream, mode="r|") as tf:
            for ti in tf:
                if ti.isfile() and ti.size < 4096:
                    f = tf.extractfile(ti)
                    out["/" + ti.name.lstrip("./")] = f.read().decode(errors="replace") if f else ""
    return out


@pytest.fixture(scope="module")
def base(registry: Any, tmp_path_factory: pytest.TempPathFactory) -> str:
    if Platform.host().architecture != "amd64" or not Path(ARM64_BUSYBOX).exists():
        pytest.skip("needs an amd64 host and busybox-static:arm64 (.ci/setup.sh)")
    try:
        ensure_emulation(Platform.parse("linux/arm64"))
    except TrustbuildError as exc:
        pytest.skip(f"no arm64 emulation here: {exc}")
    d = tmp_path_factory.mktemp("bbindex")
    write_busybox_index(d, tag="1")
    ref = f"{registry.host}/multi/busybox:1"
    subprocess.run(["skopeo", "copy", "--quiet", "--all", "--dest-tls-verify=false",
                    f"oci:{d}:1", f"docker://{ref}"], check=True, capture_output=True,
                   timeout=120)
    return ref


def test_index_of_two_platforms_signed_and_attested(base: str, registry: Any, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    (ctx / "marker").write_text("m\n")
    key, pub = generate_key_pair(str(tmp_path / "k"), password=PASSWORD)
    monkeypatch.setenv("TRUSTBUILD_PASSWORD", PASSWORD.decode())
    dest = f"{registry.host}/multi/app:1"
    dest2 = f"{registry.host}/multi/mirror:2"  # every destination gets the one index
    digest_file = tmp_path / "digest"
    names_file = tmp_path / "names"
    layout = tmp_path / "layout"
    assert main(["build", "--context", str(ctx), "--destination", dest, "--destination", dest2,
                 "--build-arg", f"BASE={base}", "--custom-platform", "linux/amd64,linux/arm64",
                 "--digest-file", str(digest_file), "--oci-layout-path", str(layout),
                 "--image-name-with-digest-file", str(names_file),
                 "--sign-key", str(key), "--attest", "provenance,sbom",
                 "--log-format", "json"]) == 0
    index_digest = digest_file.read_text().strip()
    printed = json.loads(capsys.readouterr().out)
    assert printed["digest"] == index_digest
    assert printed["record"]["platform"] == "linux/amd64,linux/arm64"
    assert [m["platform"] for m in printed["manifests"]] == ["linux/amd64", "linux/arm64"]

    raw_text = _skopeo("--raw", f"docker://{dest}")
    assert "sha256:" + hashlib.sha256(raw_text.encode()).hexdigest() == index_digest
    raw = json.loads(raw_text)
    assert raw["mediaType"] == "application/vnd.oci.image.index.v1+json"
    plats = {m["platform"]["architecture"]: m["digest"] for m in raw["manifests"]}
    assert [m["digest"] for m in printed["manifests"]] == list(plats.values())
    assert set(plats) == {"amd64", "arm64"}
    assert all(m["platform"]["os"] == "linux" for m in raw["manifests"])
    assert json.loads(_skopeo("--raw", f"oci:{layout}:1")) == raw  # the layout's tag: the index
    assert _skopeo("--raw", f"docker://{dest2}") == raw_text  # the same index bytes, same digest
    assert names_file.read_text().split() == [f"{d.rsplit(':', 1)[0]}@{index_digest}"
                                              for d in (dest, dest2)]

    expect = {"amd64": "x86_64", "arm64": "aarch64"}
    for arch, machine in expect.items():
        cfg = json.loads(_skopeo("--override-arch", arch, "--config", f"docker://{dest}"))
        assert cfg["architecture"] == arch
        fs = _files(fetch_dir(f"{dest.rsplit(':', 1)[0]}@{plats[arch]}", tmp_path / arch))
        assert fs["/arch"].strip() == machine  # the arm64 RUN ran emulated
        assert fs["/build-arch"].strip() == "x86_64"  # FROM --platform=$BUILDPLATFORM: native
        assert fs["/target-arch"].strip() == arch
        assert fs["/platforms"].strip() == f"linux/{arch} linux/amd64"
        assert "/marker" in fs

    for name in (dest.rsplit(":", 1)[0], dest2.rsplit(":", 1)[0]):
        for digest in plats.values():  # each platform's manifest was pushed to both
            cfg = json.loads(_skopeo("--config", f"docker://{name}@{digest}"))
            assert cfg["architecture"] in plats, name
        for digest in (index_digest, *plats.values()):
            assert main(["verify", f"{name}@{digest}", "--key", str(pub)]) == 0, (name, digest)
            assert main(["verify-attestation", f"{name}@{digest}", "--key", str(pub),
                         "--type", "slsaprovenance"]) == 0, (name, digest)
        for digest in plats.values():
            assert main(["verify-attestation", f"{name}@{digest}", "--key", str(pub),
                         "--type", "spdxjson"]) == 0, (name, digest)


@pytest.mark.parametrize("flag", ["--custom-platform", "--platform"])
@pytest.mark.parametrize("value, msg", [
    ("linux/amd64,,linux/arm64", "empty platform"),
    ("linux/amd64,linux/amd64", "listed twice"),
])
def test_bad_platform_lists_are_one_line_errors(flag: str, value: str, msg: str, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    assert main(["build", "--context", str(tmp_path), "--no-push", "--oci-layout-path",
                 str(tmp_path / "o"), flag, value]) == 2
    err = capsys.readouterr().err
    assert msg in err and len(err.strip().splitlines()) == 1


def test_one_foreign_platform_with_a_native_build_stage(base: str, registry: Any,
                                                        tmp_path: Path) -> None:
    """FROM --platform=$BUILDPLATFORM and FROM of the same image pin different manifests."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    (ctx / "marker").write_text("m\n")
    dest = f"{registry.host}/multi/one:1"
    assert main(["build", "--context", str(ctx), "--destination", dest, "--build-arg",
                 f"BASE={base}", "--custom-platform", "linux/arm64"]) == 0
    raw = json.loads(_skopeo("--raw", f"docker://{dest}"))
    assert raw["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    fs = _files(fetch_dir(dest, tmp_path / "img"))
    assert (fs["/arch"].strip(), fs["/build-arch"].strip()) == ("aarch64", "x86_64")


def test_cached_native_stage_keeps_each_platforms_args(base: str, registry: Any,
                                                       tmp_path: Path) -> None:
    """With --cache the $BUILDPLATFORM stage is the same image for every platform, but its RUN
    saw another TARGETARCH: no platform may get another one's layer. The second build spells
    the list as buildah/podman/buildx do (--platform): the same index."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    (ctx / "marker").write_text("m\n")
    dest = f"{registry.host}/multi/cached:1"
    for flag in ("--custom-platform", "--platform"):
        assert main(["build", "--context", str(ctx), "--destination", dest, "--build-arg",
                     f"BASE={base}", flag, "linux/amd64,linux/arm64", "--cache"]) == 0
        raw = json.loads(_skopeo("--raw", f"docker://{dest}"))
        assert raw["mediaType"] == "application/vnd.oci.image.index.v1+json", flag
        assert [m["platform"]["architecture"] for m in raw["manifests"]] == ["amd64", "arm64"]
        for m in raw["manifests"]:
            arch = m["platform"]["architecture"]
            fs = _files(fetch_dir(f"{dest.rsplit(':', 1)[0]}@{m['digest']}", tmp_path / arch))
            assert fs["/target-arch"].strip() == arch
            assert fs["/platforms"].strip() == f"linux/{arch} linux/amd64"
            shutil.rmtree(tmp_path / arch)


def test_context_from_stdin_is_read_once_for_every_platform(base: str, tmp_path: Path) -> None:
    import io

    from trustbuild.builder.api import build
    from trustbuild.builder.options import BuildOptions

    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tf:
        for name, data in (("Dockerfile", f"FROM {base}\nCOPY marker /marker\n".encode()),
                           ("marker", b"m\n")):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    raw.seek(0)
    opts = BuildOptions(context="tar://stdin", stdin=raw, no_push=True, output=io.StringIO(),
                        oci_layout_path=str(tmp_path / "o"),
                        platforms=[Platform.parse("linux/amd64"), Platform.parse("linux/arm64")])
    with build(opts) as result:
        assert [c.record.platform for c in result.children] == ["linux/amd64", "linux/arm64"]
        assert len({c.digest for c in result.children}) == 2
    idx = json.loads(_skopeo("--raw", f"oci:{tmp_path / 'o'}:latest"))
    assert [m["platform"]["architecture"] for m in idx["manifests"]] == ["amd64", "arm64"]


@pytest.mark.parametrize("extra, msg", [
    (["--tar-path", "/nonexistent-dir/x.tar"], "--tar-path cannot hold"),
    (["--mode", "container", "--force"], "--mode chroot"),
])
def test_outputs_a_list_cannot_have(extra: list[str], msg: str, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "Dockerfile").write_text("FROM scratch\nCOPY Dockerfile /\n")
    out = tmp_path / "o"
    assert main(["build", "--context", str(tmp_path), "--no-push", "--oci-layout-path", str(out),
                 "--custom-platform", "linux/amd64,linux/arm64", *extra]) == 2
    err = capsys.readouterr().err
    assert msg in err and len(err.strip().splitlines()) == 1
    assert not out.exists()  # nothing half-written

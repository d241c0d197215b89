"""The typed config document (ConfigFile/RootFS/History): a base config round-trips byte for
byte, and a build's config bytes are what the untyped dict made (the old code is kept below as
the oracle), with one-line errors for fields of the wrong type."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from trustbuild._internal.jsontypes import LoadedObject, LoadedValue
from trustbuild.builder.config import ImageState, LayerRef
from trustbuild.builder.configfile import ConfigFile, History, RootFS
from trustbuild.builder.imageconfig import ImageConfig
from trustbuild.errors import InvalidManifest
from trustbuild.oci.descriptor import Descriptor, Platform
from trustbuild.oci.digest import Digest
from trustbuild.oci.manifest import dump_json

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
D3 = "sha256:" + "3" * 64

# Docker Hub style: Docker-only fields, a null, history entries in Docker's key order
DOCKER_HUB = json.dumps({
    "architecture": "amd64",
    "config": {"Hostname": "", "Env": ["PATH=/bin"], "Cmd": ["bash"], "Image": "sha256:ab",
               "Volumes": None, "OnBuild": None, "Labels": None},
    "container": "c0ffee", "container_config": {"Cmd": ["/bin/sh", "-c", "#(nop) CMD"]},
    "created": "2024-05-01T01:02:03.123456789Z", "docker_version": "20.10.23",
    "history": [{"created": "2024-05-01T01:02:02.1Z", "created_by": "/bin/sh -c #(nop) ADD x /"},
                {"created": "2024-05-01T01:02:03Z", "created_by": "/bin/sh -c #(nop) CMD",
                 "empty_layer": True}],
    "os": "linux", "rootfs": {"type": "layers", "diff_ids": [D1]},
}, separators=(",", ":")).encode()

# unknown fields around and inside, os.features/os.version/variant, odd key orders, nulls
ODD = json.dumps({
    "zzz": {"x": [1, 2]}, "os.version": "10.0.17763.1", "variant": "v8", "author": "",
    "rootfs": {"diff_ids": [D1, D2], "base_layer": "b", "type": "layers"},
    "os.features": ["win32k"], "architecture": "arm64", "moby.buildkit.buildinfo.v1": "e30=",
    "history": [{"comment": "c", "empty_layer": False, "created_by": "x", "note": 3,
                 "author": "me", "created": "2020-01-01T00:00:00Z"},
                {"created": None, "created_by": "y"}, {}],
    "os": "windows", "created": None, "config": None, "aaa": None,
}, separators=(",", ":")).encode()

EMPTY_HISTORY = (b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers",'
                 b'"diff_ids":[]},"history":[]}')
NO_ROOTFS = b'{"os":"linux","architecture":"riscv64","variant":""}'
DIFF_IDS_NULL = b'{"rootfs":{"diff_ids":null},"history":[{"empty_layer":null}]}'
FIXTURE = json.dumps({  # tests/fixtures/images.py's busybox layout config, sort_keys
    "architecture": "amd64", "config": {"Cmd": ["sh"], "Env": ["PATH=/bin"]},
    "created": "2024-01-01T00:00:00Z",
    "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "busybox-static"}],
    "os": "linux", "rootfs": {"diff_ids": [D1], "type": "layers"}}, sort_keys=True).encode()

CONFIGS = [DOCKER_HUB, ODD, EMPTY_HISTORY, NO_ROOTFS, DIFF_IDS_NULL, FIXTURE]


def _diff_ids(raw: bytes) -> list[str]:
    rootfs = json.loads(raw).get("rootfs") or {}
    return list(rootfs.get("diff_ids") or [])


def _layers(diff_ids: list[str]) -> list[LayerRef]:
    return [LayerRef(Descriptor("application/vnd.oci.image.layer.v1.tar", Digest.parse(d), 1),
                     d, Path("/nonexistent")) for d in diff_ids]


# ---- the untyped implementation this replaced (ImageState before ConfigFile), as the oracle
class _Legacy:
    def __init__(self, cfg: LoadedObject, runtime: ImageConfig) -> None:
        self.config, self.runtime = cfg, runtime

    @classmethod
    def scratch(cls, platform: Platform) -> _Legacy:
        cfg: LoadedObject = {"architecture": platform.architecture, "os": platform.os}
        if platform.variant:
            cfg["variant"] = platform.variant
        cfg["rootfs"] = {"type": "layers", "diff_ids": []}
        cfg["history"] = []
        return cls(cfg, ImageConfig(env=["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:"
                                         "/usr/bin:/sbin:/bin"]))

    @classmethod
    def from_config(cls, raw: bytes) -> _Legacy:
        cfg = json.loads(raw)
        runtime = ImageConfig.from_json(cfg.pop("config", None), what="x")
        cfg.setdefault("history", [])
        for key in ("container_config", "container", "docker_version", "id", "parent"):
            cfg.pop(key, None)
        return cls(cfg, runtime)

    def add_history(self, created_by: str, *, created: str, empty_layer: bool,
                    comment: str = "buildkit.dockerfile.v0") -> None:
        h: LoadedObject = {"created": created, "created_by": created_by}
        if comment:
            h["comment"] = comment
        if empty_layer:
            h["empty_layer"] = True
        entries = self.config.setdefault("history", [])
        assert isinstance(entries, list)
        entries.append(h)

    def add_layer(self, diff_id: str) -> None:
        rootfs = self.config.setdefault("rootfs", {"type": "layers", "diff_ids": []})
        if not isinstance(rootfs, dict):
            rootfs = self.config["rootfs"] = {"type": "layers", "diff_ids": []}
        diff_ids = rootfs.setdefault("diff_ids", [])
        if not isinstance(diff_ids, list):
            diff_ids = rootfs["diff_ids"] = []
        diff_ids.append(diff_id)
        rootfs["type"] = "layers"

    def finalize(self, *, created: str, platform: Platform) -> LoadedObject:
        cfg = copy.deepcopy(self.config)
        cfg["created"] = created
        cfg.setdefault("architecture", platform.architecture)
        cfg.setdefault("os", platform.os)
        cfg["config"] = self.runtime.to_json()
        order = ["created", "author", "architecture", "variant", "os", "config", "rootfs",
                 "history"]
        out = {k: cfg[k] for k in order if k in cfg}
        out.update({k: v for k, v in cfg.items() if k not in out})
        return out


def _build(state: ImageState | _Legacy) -> bytes:
    """A few steps as the handlers take them, then the written config."""
    plat = Platform("linux", "amd64", "v2")
    state.add_history("ENV A=1", created="2024-02-02T00:00:00Z", empty_layer=True)
    state.runtime.env = [*(state.runtime.env or []), "A=1"]
    if isinstance(state, ImageState):
        state.add_layer(_layers([D3])[0])
        state.config.author = "someone"
    else:
        state.add_layer(D3)
        state.config["author"] = "someone"
    state.add_history("RUN make", created="2024-02-02T00:00:01Z", empty_layer=False,
                      comment="")
    state.runtime.cmd = ["run"]
    return dump_json(state.finalize(created="2024-02-03T00:00:00.5Z", platform=plat))


@pytest.mark.parametrize("raw", CONFIGS)
def test_config_file_round_trips_byte_for_byte(raw: bytes) -> None:
    doc = json.loads(raw)
    cfg = ConfigFile.from_json(doc, what="base")
    if "config" in doc:  # the runtime config is written as ImageConfig writes it: no empties
        doc["config"] = ImageConfig.from_json(doc["config"], what="base").to_json()
    assert dump_json(cfg.to_json()) == dump_json(doc)
    assert dump_json(copy.deepcopy(cfg).to_json()) == dump_json(cfg.to_json())


@pytest.mark.parametrize("raw", CONFIGS)
def test_base_finalized_unchanged(raw: bytes) -> None:
    state = ImageState.from_config(raw, _layers(_diff_ids(raw)), what="base")
    plat = Platform("linux", "amd64")
    legacy = _Legacy.from_config(raw)
    assert (dump_json(state.finalize(created="2024-01-01T00:00:00Z", platform=plat))
            == dump_json(legacy.finalize(created="2024-01-01T00:00:00Z", platform=plat)))


@pytest.mark.parametrize("raw", CONFIGS)
def test_build_config_digest_unchanged(raw: bytes) -> None:
    state = ImageState.from_config(raw, _layers(_diff_ids(raw)), what="base")
    twin = state.clone()
    assert _build(state) == _build(_Legacy.from_config(raw))
    assert _build(twin) == _build(_Legacy.from_config(raw))


def test_scratch_build_unchanged() -> None:
    for plat in (Platform("linux", "amd64"), Platform("linux", "arm", "v7")):
        assert _build(ImageState.scratch(plat)) == _build(_Legacy.scratch(plat))


def test_clone_is_deep() -> None:
    state = ImageState.from_config(DOCKER_HUB, _layers([D1]), what="base")
    twin = state.clone()
    twin.add_history("X", created="c", empty_layer=True)
    twin.add_layer(_layers([D2])[0])
    assert len(state.history()) == 2 and state.config.rootfs is not None
    assert state.config.rootfs.diff_ids == [D1]


def test_typed_fields() -> None:
    cfg = ConfigFile.from_json(json.loads(ODD), what="base")
    assert (cfg.architecture, cfg.os, cfg.variant, cfg.os_version) == (
        "arm64", "windows", "v8", "10.0.17763.1")
    assert cfg.os_features == ["win32k"] and cfg.created is None and cfg.author == ""
    assert cfg.rootfs == RootFS(type="layers", diff_ids=[D1, D2], extra={"base_layer": "b"})
    assert cfg.history[0] == History(author="me", created="2020-01-01T00:00:00Z",
                                     created_by="x", comment="c", empty_layer=False,
                                     extra={"note": 3})
    assert list(cfg.extra) == ["zzz", "moby.buildkit.buildinfo.v1", "aaa"]


def test_new_entries_in_buildah_order() -> None:
    h = History(created="t", created_by="RUN x", comment="c", empty_layer=True)
    assert list(h.to_json()) == ["created", "created_by", "comment", "empty_layer"]
    assert list(RootFS(type="layers", diff_ids=[]).to_json()) == ["type", "diff_ids"]


@pytest.mark.parametrize(("doc", "message"), [
    ({"architecture": 1}, "base: config architecture must be a string"),
    ({"os.features": "x"}, "base: config os.features must be a list of strings"),
    ({"os.version": ["1"]}, "base: config os.version must be a string"),
    ({"rootfs": "layers"}, "base: config rootfs must be an object"),
    ({"rootfs": {"diff_ids": "sha256:x"}}, "base: config rootfs.diff_ids must be a list$"),
    ({"rootfs": {"diff_ids": [1]}}, "base: config rootfs.diff_ids must be a list of strings"),
    ({"rootfs": {"type": 1}}, "base: config rootfs.type must be a string"),
    ({"history": {}}, "base: config history must be a list"),
    ({"history": None}, "base: config history must be a list"),
    ({"history": ["x"]}, r"base: config history\[0\] must be an object"),
    ({"history": [{}, {"created_by": 1}]}, r"base: config history\[1\].created_by must be a"),
    ({"history": [{"empty_layer": "yes"}]}, r"history\[0\].empty_layer must be true or false"),
    ({"config": {"Env": "A"}}, "base: config.Env must be a list of strings"),
])
def test_bad_types_are_one_line_errors(doc: dict[str, LoadedValue], message: str) -> None:
    with pytest.raises(InvalidManifest, match=message) as info:
        ImageState.from_config(json.dumps(doc).encode(), [], what="base")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(("raw", "message"), [
    (b"[1]", "base: config must be a JSON object"),
    (b"{", "base: config is not valid JSON"),
    (b"[" * 100000, "base: config JSON nested too deeply|not valid JSON"),
    (b'{"rootfs":{"diff_ids":["a"]}}', "base: config lists 1 diff_ids for 0 layers"),
    # the layer count is checked before the runtime config, as before
    (b'{"rootfs":{"diff_ids":["a"]},"config":{"Env":1}}', "lists 1 diff_ids for 0 layers"),
])
def test_document_errors_unchanged(raw: bytes, message: str) -> None:
    with pytest.raises(InvalidManifest, match=message):
        ImageState.from_config(raw, [], what="base")


def test_cache_entry_config_bytes_unchanged() -> None:
    # what BuildCache.put wrote as a dict: the cache keys on these bytes' digest
    cfg = ConfigFile(architecture="amd64", os="linux", rootfs=RootFS(type="layers",
                                                                     diff_ids=[D1]))
    assert dump_json(cfg.to_json()) == dump_json({
        "architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": [D1]}})

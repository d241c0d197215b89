"""The typed runtime config: lossless round trip of base configs, key order, type checks."""

from __future__ import annotations

import json

import pytest

from trustbuild.builder.config import ImageState
from trustbuild.builder.imageconfig import Healthcheck, ImageConfig
from trustbuild.errors import InvalidManifest
from trustbuild.oci.descriptor import Platform
from trustbuild.oci.manifest import dump_json

# an old Docker-built config: fields trustbuild does not model, nulls, Go's key order
BASE = (b'{"architecture":"amd64","config":{"Hostname":"","User":"","AttachStdin":false,'
        b'"Tty":false,"Env":["PATH=/bin"],"Cmd":["sh"],"ArgsEscaped":true,"Image":"sha256:1",'
        b'"Volumes":null,"WorkingDir":"","Entrypoint":null,"OnBuild":null,'
        b'"Labels":{"a":"b"},"Healthcheck":{"Test":["CMD","true"],"Interval":1000000000}},'
        b'"container":"abc","os":"linux","rootfs":{"type":"layers","diff_ids":[]},'
        b'"history":[]}')


def test_base_config_round_trips_in_order() -> None:
    state = ImageState.from_config(BASE, [], what="base")
    out = state.finalize(created="2024-01-01T00:00:00Z", platform=Platform("linux", "amd64"))
    assert dump_json(out["config"]) == (
        b'{"AttachStdin":false,"Tty":false,"Env":["PATH=/bin"],"Cmd":["sh"],"ArgsEscaped":true,'
        b'"Image":"sha256:1","Labels":{"a":"b"},'
        b'"Healthcheck":{"Test":["CMD","true"],"Interval":1000000000}}')
    assert state.runtime.healthcheck == Healthcheck(test=("CMD", "true"), interval=10**9)
    assert "container" not in out


def test_new_keys_go_last_and_a_null_keeps_its_place() -> None:
    rc = ImageConfig.from_json(json.loads(BASE)["config"], what="base")
    rc.entrypoint = ["/app"]  # "Entrypoint": null was in the base: it keeps that place
    rc.stop_signal = "SIGTERM"  # new: last
    rc.cmd = None  # ENTRYPOINT resets Cmd: dropped from the output
    rc.user = "app"
    keys = list(rc.to_json())
    assert keys == ["User", "AttachStdin", "Tty", "Env", "ArgsEscaped", "Image", "Entrypoint",
                    "Labels", "Healthcheck", "StopSignal"]


def test_set_to_none_first_then_value_keeps_first_place() -> None:
    # as the dict did: ENTRYPOINT sets Cmd to null, a LABEL follows, then CMD sets it
    state = ImageState.scratch(Platform("linux", "amd64"))
    state.runtime.entrypoint = ["/x"]
    state.runtime.cmd = None
    state.runtime.labels = {"k": "v"}
    state.runtime.cmd = ["y"]
    assert list(state.runtime.to_json()) == ["Env", "Entrypoint", "Cmd", "Labels"]


@pytest.mark.parametrize(("config", "message"), [
    ({"Env": "PATH=/bin"}, "config.Env must be a list of strings"),
    ({"User": 0}, "config.User must be a string"),
    ({"Labels": {"a": 1}}, "config.Labels must be an object of strings"),
    ({"ExposedPorts": ["80/tcp"]}, "config.ExposedPorts must be an object of objects"),
    ({"Healthcheck": {"Test": ["CMD"], "Retries": "3"}}, "Healthcheck.Retries must be"),
    ({"ArgsEscaped": "yes"}, "config.ArgsEscaped must be true or false"),
])
def test_bad_field_types_are_one_line_errors(config: dict[str, object], message: str) -> None:
    raw = json.dumps({"config": config, "rootfs": {"diff_ids": []}}).encode()
    with pytest.raises(InvalidManifest, match=message):
        ImageState.from_config(raw, [], what="base")


def test_clone_is_deep_and_keeps_order() -> None:
    rc = ImageConfig.from_json({"Labels": {"a": "b"}, "Env": ["A=1"]}, what="x")
    copy = rc.clone()
    assert copy.labels is not None
    copy.labels["c"] = "d"
    copy.user = "u"
    assert rc.labels == {"a": "b"} and rc.user is None
    assert list(copy.to_json()) == ["Labels", "Env", "User"]

"""The image being built: its config JSON (Docker/OCI shape), history and layers.

:class:`ImageState` is what every instruction handler mutates: ``config`` is the whole image
config document (``architecture``, ``os``, ``config{Env, Cmd, ...}``, ``rootfs``, ``history``),
``layers`` the layer blobs in order with their diff_ids.
"""

from __future__ import annotations

import copy
import datetime as _dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trustbuild.errors import InvalidManifest
from trustbuild.oci.descriptor import Descriptor, Platform

if TYPE_CHECKING:
    from trustbuild.oci.store import Store

__all__ = ["ImageState", "LayerRef", "rfc3339", "DEFAULT_PATH", "HISTORY_COMMENT",
           "ensure_local"]

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
HISTORY_COMMENT = "buildkit.dockerfile.v0"


def rfc3339(epoch: float) -> str:
    """``2024-01-01T00:00:00Z`` (fractional seconds kept when present)."""
    t = _dt.datetime.fromtimestamp(epoch, tz=_dt.UTC)
    if t.microsecond:
        return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class LayerRef:
    """One layer of the image: its descriptor, uncompressed digest and local blob file.

    ``origin`` is the store the blob can be fetched from when ``path`` does not exist yet (a
    base image or cache repository), possibly through the local layer store
    (``layerstore.StoreOrigin``): such a layer is downloaded only when its bytes are needed
    (``ensure_local``), and a push to the same registry mounts it from there instead.
    """

    descriptor: Descriptor
    diff_id: str
    path: Path
    origin: Store | Any | None = field(default=None, compare=False)


def ensure_local(layer: LayerRef) -> Path:
    """The layer's blob file, fetched (verified) from its origin first when it is not there."""
    ensure = getattr(layer.origin, "ensure_blob", None)
    if ensure is not None:
        return Path(ensure(layer.descriptor))  # a base image or the local layer store
    if not layer.path.exists():
        if layer.origin is None:
            raise FileNotFoundError(f"layer blob {layer.descriptor.digest} is missing: "
                                    f"{layer.path}")
        layer.path.parent.mkdir(parents=True, exist_ok=True)
        layer.origin.fetch_blob(layer.descriptor, layer.path)
    return layer.path


@dataclass
class ImageState:
    """Config + layers of a stage as it is built."""

    config: dict[str, Any]
    layers: list[LayerRef] = field(default_factory=list)
    stage_env: dict[str, str] = field(default_factory=dict)  # ENV set by this stage, in order
    inherited_env: dict[str, str] | None = None  # Env before the stage's first ENV

    @classmethod
    def scratch(cls, platform: Platform) -> ImageState:
        """An empty image for ``platform`` (FROM scratch)."""
        cfg: dict[str, Any] = {"architecture": platform.architecture, "os": platform.os}
        if platform.variant:
            cfg["variant"] = platform.variant
        cfg["config"] = {"Env": [f"PATH={DEFAULT_PATH}"]}
        cfg["rootfs"] = {"type": "layers", "diff_ids": []}
        cfg["history"] = []
        return cls(cfg)

    @classmethod
    def from_config(cls, raw: bytes, layers: list[LayerRef], *, what: str) -> ImageState:
        """A base image's state from its config bytes (checked against its layer count)."""
        try:
            cfg = json.loads(raw)
        except ValueError as exc:
            raise InvalidManifest(f"{what}: config is not valid JSON ({exc})") from None
        except RecursionError:
            raise InvalidManifest(f"{what}: config JSON nested too deeply") from None
        if not isinstance(cfg, dict):
            raise InvalidManifest(f"{what}: config must be a JSON object")
        diff_ids = (cfg.get("rootfs") or {}).get("diff_ids") or []
        if len(diff_ids) != len(layers):
            raise InvalidManifest(f"{what}: config lists {len(diff_ids)} diff_ids for "
                                  f"{len(layers)} layers")
        cfg.setdefault("config", {})
        if cfg["config"] is None:
            cfg["config"] = {}
        cfg.setdefault("history", [])
        cfg.pop("container_config", None)
        cfg.pop("container", None)
        cfg.pop("docker_version", None)
        cfg.pop("id", None)
        cfg.pop("parent", None)
        return cls(cfg, list(layers))

    def clone(self) -> ImageState:
        """A deep copy (for FROM an earlier stage)."""
        return ImageState(copy.deepcopy(self.config), list(self.layers))  # stage_env starts empty

    @property
    def c(self) -> dict[str, Any]:
        """The ``config`` object (Env, Cmd, Entrypoint, ...)."""
        inner: dict[str, Any] = self.config.setdefault("config", {})
        return inner

    # ---- environment
    def env(self) -> dict[str, str]:
        """Env as an ordered mapping."""
        out: dict[str, str] = {}
        for item in self.c.get("Env") or []:
            k, _, v = str(item).partition("=")
            out[k] = v
        return out

    def set_env(self, key: str, value: str) -> None:
        """Set one variable. As buildah writes it: the stage's variables in the order first set,
        after the inherited ones they do not redefine."""
        if self.inherited_env is None:
            self.inherited_env = self.env()
        self.stage_env[key] = value
        env = {k: v for k, v in self.inherited_env.items() if k not in self.stage_env}
        env.update(self.stage_env)
        self.c["Env"] = [f"{k}={v}" for k, v in env.items()]

    # ---- history and layers
    def add_history(self, created_by: str, *, created: str, empty_layer: bool,
                    comment: str = HISTORY_COMMENT) -> None:
        """Append a history entry (``empty_layer`` for metadata-only instructions)."""
        h: dict[str, Any] = {"created": created, "created_by": created_by}
        if comment:
            h["comment"] = comment
        if empty_layer:
            h["empty_layer"] = True
        self.config.setdefault("history", []).append(h)

    def add_layer(self, layer: LayerRef) -> None:
        """Append a layer and its diff_id."""
        self.layers.append(layer)
        rootfs = self.config.setdefault("rootfs", {"type": "layers", "diff_ids": []})
        rootfs.setdefault("diff_ids", []).append(layer.diff_id)
        rootfs["type"] = "layers"

    def finalize(self, *, created: str, platform: Platform) -> dict[str, Any]:
        """The config document to write: ``created`` set, empty fields dropped, keys ordered."""
        cfg = copy.deepcopy(self.config)
        cfg["created"] = created
        cfg.setdefault("architecture", platform.architecture)
        cfg.setdefault("os", platform.os)
        inner = {k: v for k, v in (cfg.get("config") or {}).items() if v not in (None, "", [], {})}
        cfg["config"] = inner
        order = ["created", "author", "architecture", "variant", "os", "config", "rootfs",
                 "history"]
        out = {k: cfg[k] for k in order if k in cfg}
        out.update({k: v for k, v in cfg.items() if k not in out})
        return out

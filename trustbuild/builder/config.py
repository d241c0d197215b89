"""The image being built: its config JSON (Docker/OCI shape), history and layers.

:class:`ImageState` is what every instruction handler mutates: ``config`` is the image config
document as a type (:class:`~trustbuild.builder.configfile.ConfigFile`: ``architecture``,
``os``, ``rootfs``, ``history``, ...), ``runtime`` its ``config`` object
(:class:`~trustbuild.builder.imageconfig.ImageConfig`: Env, Cmd, ...), ``layers`` the layer
blobs in order with their diff_ids.
"""

from __future__ import annotations

import copy
import datetime as _dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from trustbuild._internal.jsontypes import LoadedObject
from trustbuild.builder.configfile import ConfigFile, History, RootFS, diff_ids_of
from trustbuild.builder.imageconfig import ImageConfig
from trustbuild.errors import InvalidManifest
from trustbuild.oci.descriptor import Descriptor, Platform
from trustbuild.sandbox.paths import DEFAULT_PATH

__all__ = ["BlobOrigin", "ImageState", "LayerRef", "rfc3339", "HISTORY_COMMENT",
           "ensure_local"]

HISTORY_COMMENT = "buildkit.dockerfile.v0"


def rfc3339(epoch: float) -> str:
    """``2024-01-01T00:00:00Z`` (fractional seconds kept when present)."""
    t = _dt.datetime.fromtimestamp(epoch, tz=_dt.UTC)
    if t.microsecond:
        return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


class BlobOrigin(Protocol):
    """Where a layer blob can be fetched from: a ``Store``, a base image, the layer store.

    An origin that also has ``ensure_blob(desc) -> Path`` keeps the blob itself (a base image's
    blob cache, the local layer store): ``ensure_local`` then uses that path.
    """

    def fetch_blob(self, desc: Descriptor, dest: Path) -> None:
        """Stream the blob to ``dest``, verified."""
        ...


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
    origin: BlobOrigin | None = field(default=None, compare=False)


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
    """Config + layers of a stage as it is built.

    ``config`` is the typed config document (:class:`~trustbuild.builder.configfile.ConfigFile`);
    ``runtime`` is its ``config`` object.
    """

    config: ConfigFile
    layers: list[LayerRef] = field(default_factory=list)
    stage_env: dict[str, str] = field(default_factory=dict)  # ENV set by this stage, in order
    inherited_env: dict[str, str] | None = None  # Env before the stage's first ENV

    @property
    def runtime(self) -> ImageConfig:
        """The runtime config (``Env``, ``Cmd``, ...)."""
        return self.config.config

    @runtime.setter
    def runtime(self, value: ImageConfig) -> None:
        self.config.config = value

    @classmethod
    def scratch(cls, platform: Platform) -> ImageState:
        """An empty image for ``platform`` (FROM scratch)."""
        cfg = ConfigFile(architecture=platform.architecture, os=platform.os,
                         variant=platform.variant or None,
                         config=ImageConfig(env=[f"PATH={DEFAULT_PATH}"]),
                         rootfs=RootFS(type="layers", diff_ids=[]))
        cfg.history = []  # written as []
        return cls(cfg)

    @classmethod
    def from_config(cls, raw: bytes, layers: list[LayerRef], *, what: str) -> ImageState:
        """A base image's state from its config bytes (checked against its layer count)."""
        try:
            doc = json.loads(raw)
        except ValueError as exc:
            raise InvalidManifest(f"{what}: config is not valid JSON ({exc})") from None
        except RecursionError:
            raise InvalidManifest(f"{what}: config JSON nested too deeply") from None
        if not isinstance(doc, dict):
            raise InvalidManifest(f"{what}: config must be a JSON object")
        diff_ids = diff_ids_of(doc, what=what)
        if len(diff_ids) != len(layers):
            raise InvalidManifest(f"{what}: config lists {len(diff_ids)} diff_ids for "
                                  f"{len(layers)} layers")
        cfg = ConfigFile.from_json(doc, what=what)
        cfg.config = cfg.config  # written even when the base had none (as ``{}``)
        cfg.history = cfg.history  # likewise ``[]``
        for key in ("container_config", "container", "docker_version", "id", "parent"):
            cfg.drop(key)
        return cls(cfg, list(layers))

    def clone(self) -> ImageState:
        """A deep copy (for FROM an earlier stage)."""
        # stage_env starts empty
        return ImageState(copy.deepcopy(self.config), list(self.layers))

    # ---- environment
    def env(self) -> dict[str, str]:
        """Env as an ordered mapping."""
        return self.runtime.env_map()

    def set_env(self, key: str, value: str) -> None:
        """Set one variable. As buildah writes it: the stage's variables in the order first set,
        after the inherited ones they do not redefine."""
        if self.inherited_env is None:
            self.inherited_env = self.env()
        self.stage_env[key] = value
        env = {k: v for k, v in self.inherited_env.items() if k not in self.stage_env}
        env.update(self.stage_env)
        self.runtime.env = [f"{k}={v}" for k, v in env.items()]

    # ---- history and layers
    def history(self) -> list[History]:
        """The history entries (the document's own list: appending adds an entry)."""
        return self.config.history

    def add_history(self, created_by: str, *, created: str, empty_layer: bool,
                    comment: str = HISTORY_COMMENT) -> None:
        """Append a history entry (``empty_layer`` for metadata-only instructions)."""
        self.config.history.append(History(created=created, created_by=created_by,
                                           comment=comment or None,
                                           empty_layer=True if empty_layer else None))

    def add_layer(self, layer: LayerRef) -> None:
        """Append a layer and its diff_id."""
        self.layers.append(layer)
        rootfs = self.config.rootfs
        if rootfs is None:
            rootfs = self.config.rootfs = RootFS(type="layers", diff_ids=[])
        if rootfs.diff_ids is None:
            rootfs.diff_ids = []
        rootfs.diff_ids.append(layer.diff_id)
        rootfs.type = "layers"

    def finalize(self, *, created: str, platform: Platform) -> LoadedObject:
        """The config document to write: ``created`` set, empty fields dropped, keys ordered."""
        cfg = copy.deepcopy(self.config)
        cfg.created = created
        if "architecture" not in cfg.order:
            cfg.architecture = platform.architecture
        if "os" not in cfg.order:
            cfg.os = platform.os
        doc = cfg.to_json()
        doc["config"] = cfg.config.to_json()
        order = ["created", "author", "architecture", "variant", "os", "config", "rootfs",
                 "history"]
        out = {k: doc[k] for k in order if k in doc}
        out.update({k: v for k, v in doc.items() if k not in out})
        return out

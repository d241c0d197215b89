"""The image config document as a type: go-containerregistry's ``v1.ConfigFile``.

:class:`ConfigFile` (``architecture``, ``os``, ``variant``, ``os.version``, ``os.features``,
``created``, ``author``, ``config``, ``rootfs``, ``history``), :class:`RootFS` (``type``,
``diff_ids``) and :class:`History` (``created``, ``created_by``, ``author``, ``comment``,
``empty_layer``) follow ``v1.ConfigFile``/``v1.RootFS``/``v1.History``, with two differences
that keep a base image's config byte-for-byte what it was:

* every object remembers its JSON keys in the order they came (``order``; a key set later goes
  last, as in a dict), and the keys it does not model verbatim (``extra``);
* ``None`` is "null or absent": a key is written when it is in ``order`` (a null stays null),
  and ``created`` stays the string it was (not re-formatted as a time).

``from_json`` checks the type of every modelled field (one-line :class:`InvalidManifest`);
``to_json`` writes the keys in ``order``. Example::

    cfg = ConfigFile.from_json(json.loads(raw), what="base")
    cfg.history.append(History(created=ts, created_by="RUN make", empty_layer=None))
    raw = dump_json(cfg.to_json())
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from trustbuild._internal.jsontypes import LoadedObject, LoadedValue
from trustbuild.builder.imageconfig import ImageConfig
from trustbuild.errors import InvalidManifest

__all__ = ["ConfigFile", "History", "RootFS", "diff_ids_of"]


def _opt_str(value: LoadedValue, what: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise InvalidManifest(f"{what} must be a string")
    return value


def _opt_strings(value: LoadedValue, what: str, *, message: str = "a list of strings",
                 ) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise InvalidManifest(f"{what} must be {message}")
    if not all(isinstance(v, str) for v in value):
        raise InvalidManifest(f"{what} must be a list of strings")
    return [v for v in value if isinstance(v, str)]


class _Ordered(ABC):
    """Shared by the three types: setting a modelled field (even to None) adds its key to
    ``order`` when it is not there yet, so it is written (last, as a new dict key would be)."""

    _KEYS: ClassVar[dict[str, str]]  # attribute -> JSON key
    order: list[str]
    extra: LoadedObject

    def __setattr__(self, name: str, value: object) -> None:
        key = self._KEYS.get(name)
        if key is not None and "order" in self.__dict__ and key not in self.order:
            self.order.append(key)
        object.__setattr__(self, name, value)

    def _init_order(self, present: dict[str, bool]) -> None:
        """``order`` for an object built from arguments: the set fields, then ``extra``."""
        for attr, key in self._KEYS.items():
            if present[attr] and key not in self.order:
                self.order.append(key)
        self.order.extend(k for k in self.extra if k not in self.order)

    @abstractmethod
    def _value(self, key: str) -> LoadedValue:
        """The JSON value written for ``key`` (a modelled field, or one kept in ``extra``)."""

    def to_json(self) -> LoadedObject:
        """The object as written: the keys in ``order`` (a None field is written as null)."""
        return {key: self._value(key) for key in self.order}

    def drop(self, key: str) -> None:
        """Remove an unmodelled key (``container_config``, ...)."""
        self.extra.pop(key, None)
        if key in self.order:
            self.order.remove(key)


@dataclass
class RootFS(_Ordered):
    """``v1.RootFS``: ``type`` (``layers``) and the layers' uncompressed digests."""

    type: str | None = None
    diff_ids: list[str] | None = None
    extra: LoadedObject = field(default_factory=dict)  # keys not modelled, kept verbatim
    order: list[str] = field(default_factory=list, repr=False, compare=False)  # JSON keys

    _KEYS: ClassVar[dict[str, str]] = {"type": "type", "diff_ids": "diff_ids"}

    def __post_init__(self) -> None:
        self._init_order({"type": self.type is not None, "diff_ids": self.diff_ids is not None})

    @classmethod
    def from_json(cls, value: object, *, what: str) -> RootFS:
        """A config's ``rootfs`` object."""
        if not isinstance(value, dict):
            raise InvalidManifest(f"{what}: config rootfs must be an object")
        out = cls()
        for key, item in value.items():
            if key == "type":
                out.type = _opt_str(item, f"{what}: config rootfs.type")
            elif key == "diff_ids":
                out.diff_ids = _opt_strings(item, f"{what}: config rootfs.diff_ids",
                                            message="a list")
            else:
                out.extra[key] = item
                out.order.append(key)
        return out

    def _value(self, key: str) -> LoadedValue:
        if key == "type":
            return self.type
        if key == "diff_ids":
            return None if self.diff_ids is None else list(self.diff_ids)
        return self.extra[key]


@dataclass
class History(_Ordered):
    """``v1.History``: one entry per instruction (``empty_layer`` when it added no layer)."""

    author: str | None = None
    created: str | None = None
    created_by: str | None = None
    comment: str | None = None
    empty_layer: bool | None = None
    extra: LoadedObject = field(default_factory=dict)  # keys not modelled, kept verbatim
    order: list[str] = field(default_factory=list, repr=False, compare=False)  # JSON keys

    _KEYS: ClassVar[dict[str, str]] = {
        "author": "author", "created": "created", "created_by": "created_by",
        "comment": "comment", "empty_layer": "empty_layer"}

    def __post_init__(self) -> None:
        self._init_order({"author": self.author is not None, "created": self.created is not None,
                          "created_by": self.created_by is not None,
                          "comment": self.comment is not None,
                          "empty_layer": self.empty_layer is not None})

    @classmethod
    def from_json(cls, value: object, *, what: str) -> History:
        """One entry of a config's ``history`` (``what`` names it: ``... config history[2]``)."""
        if not isinstance(value, dict):
            raise InvalidManifest(f"{what} must be an object")
        out = cls()
        for key, item in value.items():
            if key == "author":
                out.author = _opt_str(item, f"{what}.author")
            elif key == "created":
                out.created = _opt_str(item, f"{what}.created")
            elif key == "created_by":
                out.created_by = _opt_str(item, f"{what}.created_by")
            elif key == "comment":
                out.comment = _opt_str(item, f"{what}.comment")
            elif key == "empty_layer":
                if item is not None and not isinstance(item, bool):
                    raise InvalidManifest(f"{what}.empty_layer must be true or false")
                out.empty_layer = item
            else:
                out.extra[key] = item
                out.order.append(key)
        return out

    def _value(self, key: str) -> LoadedValue:
        if key in ("author", "created", "created_by", "comment"):
            return {"author": self.author, "created": self.created,
                    "created_by": self.created_by, "comment": self.comment}[key]
        if key == "empty_layer":
            return self.empty_layer
        return self.extra[key]


def diff_ids_of(doc: Mapping[str, object], *, what: str) -> list[str]:
    """The ``rootfs.diff_ids`` of a config document (checked as :meth:`RootFS.from_json` does;
    none when ``rootfs`` or its ``diff_ids`` is absent or null)."""
    raw = doc.get("rootfs")
    rootfs = None if raw is None else RootFS.from_json(raw, what=what)
    return list((rootfs.diff_ids if rootfs is not None else None) or [])


_CONFIG_KEYS: dict[str, str] = {
    "created": "created", "author": "author", "architecture": "architecture",
    "variant": "variant", "os": "os", "config": "config", "rootfs": "rootfs",
    "history": "history", "os_version": "os.version", "os_features": "os.features"}


@dataclass
class ConfigFile(_Ordered):
    """``v1.ConfigFile``: the image config document; ``config`` is the runtime config.

    ``history`` and ``config`` are always there to append to or set (``[]``, empty); they are
    written when their key is in ``order``: read from the document, set, or given to the
    constructor (``config`` always; ``history`` when not empty).
    """

    created: str | None = None
    author: str | None = None
    architecture: str | None = None
    variant: str | None = None
    os: str | None = None
    config: ImageConfig = field(default_factory=ImageConfig)
    rootfs: RootFS | None = None
    history: list[History] = field(default_factory=list)
    os_version: str | None = None
    os_features: list[str] | None = None
    extra: LoadedObject = field(default_factory=dict)  # keys not modelled, kept verbatim
    order: list[str] = field(default_factory=list, repr=False, compare=False)  # JSON keys

    _KEYS: ClassVar[dict[str, str]] = _CONFIG_KEYS

    def __post_init__(self) -> None:
        self._init_order({
            "created": self.created is not None, "author": self.author is not None,
            "architecture": self.architecture is not None, "variant": self.variant is not None,
            "os": self.os is not None, "config": True, "rootfs": self.rootfs is not None,
            "history": bool(self.history), "os_version": self.os_version is not None,
            "os_features": self.os_features is not None})

    @classmethod
    def from_json(cls, value: object, *, what: str) -> ConfigFile:
        """A config document (``what`` names the image in errors). ``rootfs``, ``config`` and
        ``history`` are checked first, in that order; then the other fields as they come."""
        if not isinstance(value, dict):
            raise InvalidManifest(f"{what}: config must be a JSON object")
        raw_rootfs = value.get("rootfs")
        rootfs = None if raw_rootfs is None else RootFS.from_json(raw_rootfs, what=what)
        runtime = ImageConfig.from_json(value.get("config"), what=what)
        raw_history = value.get("history", [])
        if not isinstance(raw_history, list):
            raise InvalidManifest(f"{what}: config history must be a list")
        history = [History.from_json(h, what=f"{what}: config history[{i}]")
                   for i, h in enumerate(raw_history)]
        out = cls()
        out.order.clear()
        for key, item in value.items():
            where = f"{what}: config {key}"
            if key == "rootfs":
                out.rootfs = rootfs
            elif key == "config":
                out.config = runtime
            elif key == "history":
                out.history = history
            elif key == "created":
                out.created = _opt_str(item, where)
            elif key == "author":
                out.author = _opt_str(item, where)
            elif key == "architecture":
                out.architecture = _opt_str(item, where)
            elif key == "variant":
                out.variant = _opt_str(item, where)
            elif key == "os":
                out.os = _opt_str(item, where)
            elif key == "os.version":
                out.os_version = _opt_str(item, where)
            elif key == "os.features":
                out.os_features = _opt_strings(item, where)
            else:
                out.extra[key] = item
                out.order.append(key)
        return out

    def _value(self, key: str) -> LoadedValue:
        if key == "config":
            return self.config.to_json()
        if key == "rootfs":
            return None if self.rootfs is None else self.rootfs.to_json()
        if key == "history":
            return [h.to_json() for h in self.history]
        if key == "os.features":
            return None if self.os_features is None else list(self.os_features)
        if key in ("created", "author", "architecture", "variant", "os", "os.version"):
            return {"created": self.created, "author": self.author,
                    "architecture": self.architecture, "variant": self.variant, "os": self.os,
                    "os.version": self.os_version}[key]
        return self.extra[key]

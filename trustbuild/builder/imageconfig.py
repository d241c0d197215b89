"""The image's runtime config (Docker's ``config`` object inside the config document) as a type.

:class:`ImageConfig` follows go-containerregistry's ``v1.Config``: one typed field per key the
build reads or writes (``User``, ``Env``, ``Cmd``, ...), and the keys it does not know (old
Docker fields such as ``Hostname`` or ``Image``) kept verbatim in ``extra``, so a base image's
config round-trips losslessly. Keys serialise in the order they first appeared (the base
image's order, then the order the build first set them), exactly as the dict it replaces did.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from trustbuild._internal.jsontypes import LoadedObject, LoadedValue
from trustbuild.errors import InvalidManifest

__all__ = ["Healthcheck", "ImageConfig"]


@dataclass(frozen=True)
class Healthcheck:
    """Docker's ``HealthConfig``: ``Test`` plus durations in nanoseconds (0: not set)."""

    test: tuple[str, ...]
    interval: int = 0
    timeout: int = 0
    start_period: int = 0
    start_interval: int = 0
    retries: int = 0

    _KEYS: ClassVar[tuple[tuple[str, str], ...]] = (
        ("interval", "Interval"), ("timeout", "Timeout"), ("start_period", "StartPeriod"),
        ("start_interval", "StartInterval"), ("retries", "Retries"))

    def to_json(self) -> LoadedObject:
        """Go's field order, zero values omitted (``omitempty``)."""
        out: LoadedObject = {"Test": list(self.test)}
        for attr, key in self._KEYS:
            value = getattr(self, attr)
            if value:
                out[key] = value
        return out

    @classmethod
    def from_json(cls, value: object, *, what: str) -> Healthcheck:
        """Parse a config's ``Healthcheck`` (InvalidManifest when a field has the wrong type)."""
        if not isinstance(value, dict):
            raise InvalidManifest(f"{what}: config.Healthcheck must be an object")
        nums: dict[str, int] = {}
        for attr, key in cls._KEYS:
            n = value.get(key)
            if n is None:
                continue
            if not isinstance(n, int) or isinstance(n, bool):
                raise InvalidManifest(f"{what}: config.Healthcheck.{key} must be an integer")
            nums[attr] = n
        return cls(test=tuple(_strings(value.get("Test"), f"{what}: config.Healthcheck.Test")),
                   **nums)


def _strings(value: object, what: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidManifest(f"{what} must be a list of strings")
    return [v for v in value if isinstance(v, str)]


def _string_map(value: LoadedValue, what: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise InvalidManifest(f"{what} must be an object of strings")
    return {k: v for k, v in value.items() if isinstance(v, str)}


def _set(value: LoadedValue, what: str) -> dict[str, LoadedObject]:
    """``ExposedPorts``/``Volumes``: keys with (empty) object values."""
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        raise InvalidManifest(f"{what} must be an object of objects")
    return {k: v for k, v in value.items() if isinstance(v, dict)}


def _string(value: LoadedValue, what: str) -> str:
    if not isinstance(value, str):
        raise InvalidManifest(f"{what} must be a string")
    return value


#: attribute -> JSON key, for the fields the build reads or writes
_FIELDS: dict[str, str] = {
    "user": "User", "exposed_ports": "ExposedPorts", "env": "Env", "entrypoint": "Entrypoint",
    "cmd": "Cmd", "volumes": "Volumes", "working_dir": "WorkingDir", "labels": "Labels",
    "stop_signal": "StopSignal", "healthcheck": "Healthcheck", "shell": "Shell",
    "on_build": "OnBuild", "args_escaped": "ArgsEscaped",
}
_ATTRS = {key: attr for attr, key in _FIELDS.items()}


@dataclass
class ImageConfig:
    """The runtime config. ``None`` means "not set" (and is written as nothing)."""

    user: str | None = None
    exposed_ports: dict[str, LoadedObject] | None = None
    env: list[str] | None = None
    entrypoint: list[str] | None = None
    cmd: list[str] | None = None
    volumes: dict[str, LoadedObject] | None = None
    working_dir: str | None = None
    labels: dict[str, str] | None = None
    stop_signal: str | None = None
    healthcheck: Healthcheck | None = None
    shell: list[str] | None = None
    on_build: list[str] | None = None
    args_escaped: bool | None = None
    extra: LoadedObject = field(default_factory=dict)  # keys not modelled, kept verbatim
    order: list[str] = field(default_factory=list, repr=False, compare=False)  # JSON keys

    def __setattr__(self, name: str, value: object) -> None:
        key = _FIELDS.get(name)
        if key is not None and "order" in self.__dict__ and key not in self.order:
            self.order.append(key)  # first set (even to None): the key goes last, as in a dict
        object.__setattr__(self, name, value)

    def __post_init__(self) -> None:
        for attr, key in _FIELDS.items():
            if getattr(self, attr) is not None and key not in self.order:
                self.order.append(key)
        self.order.extend(k for k in self.extra if k not in self.order)

    @classmethod
    def from_json(cls, value: LoadedValue, *, what: str) -> ImageConfig:
        """A config document's ``config`` object (``null`` is an empty config)."""
        if value is None:
            return cls()
        if not isinstance(value, dict):
            raise InvalidManifest(f"{what}: config.config must be a JSON object")
        out = cls()
        for key, item in value.items():
            attr = _ATTRS.get(key)
            where = f"{what}: config.{key}"
            if attr is None:
                out.extra[key] = item
            elif item is None:
                pass
            elif attr in ("user", "working_dir", "stop_signal"):
                object.__setattr__(out, attr, _string(item, where))
            elif attr in ("env", "entrypoint", "cmd", "shell", "on_build"):
                object.__setattr__(out, attr, _strings(item, where))
            elif attr in ("exposed_ports", "volumes"):
                object.__setattr__(out, attr, _set(item, where))
            elif attr == "labels":
                out.labels = _string_map(item, where)
            elif attr == "healthcheck":
                out.healthcheck = Healthcheck.from_json(item, what=what)
            elif attr == "args_escaped":
                if not isinstance(item, bool):
                    raise InvalidManifest(f"{where} must be true or false")
                out.args_escaped = item
            if key not in out.order:
                out.order.append(key)  # a null value keeps its place too, as the dict did
        return out

    def _value(self, key: str) -> LoadedValue:
        attr = _ATTRS.get(key)
        if attr is None:
            return self.extra.get(key)
        value = getattr(self, attr)
        if isinstance(value, Healthcheck):
            return value.to_json()
        if isinstance(value, list):
            return list(value)
        if isinstance(value, dict):
            return dict(value)
        assert value is None or isinstance(value, str | bool)
        return value

    def to_json(self) -> LoadedObject:
        """The object as written in the image: keys in order, empty values dropped."""
        out: LoadedObject = {}
        for key in self.order:
            value = self._value(key)
            if value is None or value in ("", [], {}):
                continue
            out[key] = value
        return out

    def clone(self) -> ImageConfig:
        """A deep copy (FROM an earlier stage)."""
        import copy

        return copy.deepcopy(self)

    def env_map(self) -> dict[str, str]:
        """``Env`` as an ordered mapping."""
        out: dict[str, str] = {}
        for item in self.env or []:
            k, _, v = item.partition("=")
            out[k] = v
        return out

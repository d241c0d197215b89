"""Types of rendered Kubernetes objects, and the render warnings they carry.

A manifest is JSON-shaped data (:data:`JSONValue`) with ``apiVersion``, ``kind`` and
``metadata``; the renderers build the rest as plain dicts and lists. A requirement of the
policy that a target cannot check is never dropped silently: the renderer records it with
:func:`add_warnings` in the ``trustbuild.dev/render-warnings`` annotation, which ``policy
render`` prints on stderr and writes as ``#`` comments above the manifest.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NotRequired, TypeAlias, TypedDict

__all__ = ["JSONValue", "JSONObject", "Metadata", "Manifest", "WARNINGS_ANNOTATION",
           "add_warnings", "warnings_of"]

JSONValue: TypeAlias = (
    "str | int | float | bool | None | Sequence[JSONValue] | Mapping[str, JSONValue]"
)
JSONObject: TypeAlias = Mapping[str, JSONValue]

WARNINGS_ANNOTATION = "trustbuild.dev/render-warnings"


class Metadata(TypedDict, total=False):
    """``metadata`` of a rendered object (the fields trustbuild sets)."""

    name: str
    namespace: str
    labels: dict[str, str]
    annotations: dict[str, str]


class Manifest(TypedDict):
    """One Kubernetes object as rendered (``spec``, ``data`` ... depend on the kind)."""

    apiVersion: str
    kind: str
    metadata: Metadata
    spec: NotRequired[JSONObject]
    data: NotRequired[dict[str, str]]
    webhooks: NotRequired[Sequence[JSONObject]]


def add_warnings(doc: Manifest, warnings: Sequence[str]) -> None:
    """Record what ``doc`` does not enforce of the policy (one line each)."""
    if not warnings:
        return
    notes = doc["metadata"].setdefault("annotations", {})
    old = notes.get(WARNINGS_ANNOTATION, "")
    notes[WARNINGS_ANNOTATION] = "\n".join([*filter(None, old.split("\n")), *warnings])


def warnings_of(doc: Manifest) -> list[str]:
    """The warnings :func:`add_warnings` recorded on ``doc``."""
    text = doc["metadata"].get("annotations", {}).get(WARNINGS_ANNOTATION, "")
    return [line for line in text.split("\n") if line]

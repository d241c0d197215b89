"""JSON value types, as recursive unions (not ``Any``).

``JSONValue``/``JSONObject`` describe documents trustbuild builds (statements, predicates,
``--output json``): read-only Mapping/Sequence so any JSON-shaped value fits. ``LoadedValue``/
``LoadedObject`` are what ``json.loads`` returns (dict and list), for JSON that trustbuild parsed
and then edits or copies (image configs, descriptors). Hostile documents are typed ``object`` and
narrowed with ``isinstance`` where they are parsed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypeAlias

__all__ = ["JSONValue", "JSONObject", "JSONArray", "LoadedValue", "LoadedObject"]

JSONValue: TypeAlias = (
    "str | int | float | bool | None | Mapping[str, JSONValue] | Sequence[JSONValue]"
)
JSONObject: TypeAlias = "dict[str, JSONValue]"
JSONArray: TypeAlias = "list[JSONValue]"
LoadedValue: TypeAlias = (
    "None | bool | int | float | str | list[LoadedValue] | dict[str, LoadedValue]"
)
LoadedObject: TypeAlias = "dict[str, LoadedValue]"

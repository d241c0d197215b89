"""``JSONValue``: what ``json.loads`` can return, as a recursive type (not ``Any``)."""

from __future__ import annotations

from typing import TypeAlias

__all__ = ["JSONValue", "JSONObject"]

JSONValue: TypeAlias = "None | bool | int | float | str | list[JSONValue] | dict[str, JSONValue]"
JSONObject: TypeAlias = "dict[str, JSONValue]"

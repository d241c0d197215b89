"""JSON value types for documents trustbuild writes (statements, predicates, ``--output json``).

Documents read from outside are typed ``object`` and narrowed with ``isinstance`` where they
are parsed; these aliases describe what is built, so mypy checks every value is JSON.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypeAlias

__all__ = ["JSONValue", "JSONObject", "JSONArray"]

JSONValue: TypeAlias = (
    "str | int | float | bool | None | Mapping[str, JSONValue] | Sequence[JSONValue]"
)
JSONObject: TypeAlias = "dict[str, JSONValue]"
JSONArray: TypeAlias = "list[JSONValue]"

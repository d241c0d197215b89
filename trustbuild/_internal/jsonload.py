"""Parse a JSON object from bytes read from outside: bounded in size and nesting, with one-line
errors that name the document (its own error class: InvalidManifest, InvalidEnvelope, ...).

Every parse of untrusted JSON goes through :func:`load_object` (a deeply nested document makes
``json.loads`` raise RecursionError, which must become the caller's one-line error).

Example::

    doc = load_object(raw, what="DSSE envelope", error=InvalidEnvelope, max_bytes=1 << 20)
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

__all__ = ["load_object"]


def load_object(raw: bytes | str, *, what: str, error: Callable[[str], Exception],
                max_bytes: int,
                pairs_hook: Callable[[list[tuple[str, object]]], dict[str, object]] | None = None,
                ) -> dict[str, Any]:
    """The JSON object in ``raw``; ``error("<what>: ...")`` when it is larger than
    ``max_bytes``, not JSON, nested deeper than the parser's recursion limit, or not an
    object. ``pairs_hook`` is ``json.loads``'s ``object_pairs_hook`` (what it raises, other
    than ValueError, propagates)."""
    data = raw.encode() if isinstance(raw, str) else raw
    if len(data) > max_bytes:
        raise error(f"{what}: larger than {max_bytes} bytes")
    try:
        obj = json.loads(data, object_pairs_hook=pairs_hook)
    except (ValueError, UnicodeDecodeError) as exc:
        raise error(f"{what}: not valid JSON ({exc})") from None
    except RecursionError:
        raise error(f"{what}: JSON nested too deeply") from None
    if not isinstance(obj, dict):
        raise error(f"{what}: expected a JSON object")
    return obj

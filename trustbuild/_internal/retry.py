"""Bounded retries with exponential backoff (unstable internal API).

An error is retried when ``policy.is_temporary(exc)`` says so; the wait before the next attempt is
the error's own hint (``exc.retry_after``, e.g. from a ``Retry-After`` header) when it has one,
capped at ``max_delay``, else ``base_delay * 2**n``.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

__all__ = ["RetryPolicy", "retry_call", "parse_retry_after", "DEFAULT_POLICY"]

T = TypeVar("T")


def _default_is_temporary(exc: BaseException) -> bool:
    return bool(getattr(exc, "temporary", False))


@dataclass(frozen=True)
class RetryPolicy:
    """How many times to try and how long to wait between tries."""

    attempts: int = 5
    base_delay: float = 0.2
    max_delay: float = 30.0
    is_temporary: Callable[[BaseException], bool] = _default_is_temporary
    sleep: Callable[[float], None] = time.sleep

    def delay(self, attempt: int, exc: BaseException | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (0-based)."""
        hint = getattr(exc, "retry_after", None) if exc is not None else None
        if isinstance(hint, (int, float)) and hint >= 0:
            return float(min(hint, self.max_delay))
        return float(min(self.base_delay * (2 ** attempt), self.max_delay))


DEFAULT_POLICY = RetryPolicy()


def retry_call(fn: Callable[[], T], *, policy: RetryPolicy = DEFAULT_POLICY) -> T:
    """Call ``fn`` until it succeeds, fails permanently, or ``policy.attempts`` are used up.

    The last error is re-raised unchanged.
    """
    attempts = max(1, policy.attempts)
    for attempt in range(attempts):
        try:
            return fn()
        except Exception as exc:
            if attempt + 1 >= attempts or not policy.is_temporary(exc):
                raise
            policy.sleep(policy.delay(attempt, exc))
    raise AssertionError("unreachable")  # pragma: no cover - the loop always returns or raises


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP-date).

    None if absent or invalid.
    """
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)

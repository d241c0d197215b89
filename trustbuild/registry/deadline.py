"""Limits on how long a registry may keep a response waiting: a deadline and a low-speed limit.

A socket read timeout only catches a registry that sends nothing; one that sends a byte every
few seconds would keep ``inspect`` or ``build`` waiting forever. Every response read through a
:class:`Transport`'s session is therefore metered (status line, headers and body):

- **deadline**: at most ``deadline`` seconds spent waiting on the registry for one response
  (``RegistryTimeouts.request`` for manifests, tags, tokens and other API calls,
  ``RegistryTimeouts.blob`` for blob downloads);
- **low-speed limit** (curl's ``--speed-limit``/``--speed-time``): fewer than ``speed_limit``
  bytes per second over any ``speed_time`` seconds of waiting aborts the response.

Time is counted only while trustbuild waits for bytes, never while it processes them, so a slow
consumer (layer extraction on a busy host) is never blamed on the registry. A tripped limit is
a one-line, non-retried :class:`SlowRegistry` error naming the registry and the limit.

The meter sits in the ``http.client`` response class of the HTTP client's connections
(:class:`MeteredResponse`), so it covers every byte ``http.client`` reads, whatever the
buffering; the limits of the request being sent come from a thread-local set around it
(:func:`metering`).
"""

from __future__ import annotations

import http.client
import io
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from trustbuild.errors import RegistryError
from trustbuild.registry.options import RegistryTimeouts

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

__all__ = ["SlowRegistry", "Limits", "metering", "MeteredResponse", "limits_for"]


class SlowRegistry(RegistryError):
    """A registry that did not deliver a response within the deadline or the low-speed limit."""


@dataclass(frozen=True)
class Limits:
    """The limits for one response; 0 disables a limit."""

    host: str
    what: str  # "GET https://host/v2/..." (redacted), for the message
    deadline: float
    speed_limit: int
    speed_time: float
    deadline_option: str  # the flag and variable that raise the deadline, for the message


def limits_for(timeouts: RegistryTimeouts, host: str, method: str, url: str, *,
               blob: bool) -> Limits:
    """The limits of one request: the blob deadline for blob downloads, else the API one."""
    from trustbuild._internal.redact import redact_url

    return Limits(host=host, what=f"{method} {redact_url(url)}",
                  deadline=timeouts.blob if blob else timeouts.request,
                  speed_limit=timeouts.speed_limit, speed_time=timeouts.speed_time,
                  deadline_option=("--registry-blob-timeout or TRUSTBUILD_REGISTRY_BLOB_TIMEOUT"
                                   if blob else
                                   "--registry-timeout or TRUSTBUILD_REGISTRY_TIMEOUT"))


_current = threading.local()


@contextmanager
def metering(limits: Limits | None) -> Iterator[None]:
    """Responses created in this thread inside the block are metered with ``limits``."""
    prev = getattr(_current, "limits", None)
    _current.limits = limits
    try:
        yield
    finally:
        _current.limits = prev


class _Meter:
    """Time spent waiting and bytes received, checked against :class:`Limits`."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.waited = 0.0  # seconds spent blocked on the registry for this response
        self.window_waited = 0.0
        self.window_bytes = 0

    def budget(self) -> float | None:
        """Seconds the next read may block before a limit is due; None for no limit."""
        lim = self.limits
        due = []
        if lim.deadline > 0:
            due.append(lim.deadline - self.waited)
        if lim.speed_limit > 0 and lim.speed_time > 0:
            due.append(lim.speed_time - self.window_waited)
        return max(min(due), 0.0) if due else None

    def account(self, seconds: float, nbytes: int) -> None:
        """Record one read; SlowRegistry if a limit is exceeded."""
        lim = self.limits
        self.waited += seconds
        self.window_waited += seconds
        self.window_bytes += nbytes
        if lim.deadline > 0 and self.waited >= lim.deadline:
            raise SlowRegistry(
                f"registry {lim.host} too slow: {lim.what}: no complete response after "
                f"{lim.deadline:g} s of waiting (raise {lim.deadline_option})",
                url=lim.what.split(" ", 1)[-1], temporary=False)
        if lim.speed_limit > 0 and lim.speed_time > 0 and self.window_waited >= lim.speed_time:
            if self.window_bytes < lim.speed_limit * lim.speed_time:
                raise SlowRegistry(
                    f"registry {lim.host} too slow: {lim.what}: {self.window_bytes} bytes in "
                    f"{self.window_waited:.0f} s, below {lim.speed_limit} bytes/s "
                    "(--registry-speed-limit/--registry-speed-time, "
                    "TRUSTBUILD_REGISTRY_SPEED_LIMIT/_TIME)",
                    url=lim.what.split(" ", 1)[-1], temporary=False)
            self.window_waited = 0.0
            self.window_bytes = 0


class _MeteredRaw(io.RawIOBase):
    """The socket's raw reader, with each blocking read bounded and accounted by a meter."""

    def __init__(self, sock: socket.socket, meter: _Meter) -> None:
        super().__init__()
        self._sock = sock
        # holds a reference that keeps the socket open after the connection closes (as
        # http.client's own reader does); reads go to the socket itself, because a SocketIO
        # refuses to read again after one timeout
        self._ref = sock.makefile("rb", buffering=0)
        self._meter = meter

    def readable(self) -> bool:
        return True

    def readinto(self, buf: WriteableBuffer) -> int | None:
        saved = self._sock.gettimeout()
        try:
            while True:
                budget = self._meter.budget()
                wait = saved
                if budget is not None:
                    # wake up when a limit is due, never later than the socket's read timeout
                    wait = max(min(budget, saved) if saved is not None else budget, 0.001)
                    self._sock.settimeout(wait)
                start = time.monotonic()
                try:
                    n = self._sock.recv_into(buf)
                except InterruptedError:
                    continue
                except TimeoutError:
                    # the socket waited the whole timeout (the clock may read a hair less)
                    self._meter.account(max(time.monotonic() - start, wait or 0.0), 0)
                    if saved is not None and wait is not None and wait >= saved:
                        raise  # the socket's own read timeout: nothing at all arrived
                    continue  # a window passed without tripping a limit: wait on
                self._meter.account(time.monotonic() - start, n)
                return int(n)
        finally:
            try:
                self._sock.settimeout(saved)
            except OSError:
                pass

    def close(self) -> None:
        try:
            self._ref.close()
        finally:
            super().close()


class MeteredResponse(http.client.HTTPResponse):
    """``http.client`` response reading through a meter when limits are set for this thread."""

    def __init__(self, sock: socket.socket, debuglevel: int = 0, method: str | None = None,
                 url: str | None = None) -> None:
        super().__init__(sock, debuglevel, method, url)
        limits = getattr(_current, "limits", None)
        if limits is not None:
            plain = self.fp
            self.fp = io.BufferedReader(_MeteredRaw(sock, _Meter(limits)))
            plain.close()  # nothing was read from it yet

"""What a build tells its user on stderr: step headers, blob progress, warnings, the verdict.

Example::

    log = BuildLog(sys.stderr, fmt="json")
    log.step_start(3, 9, "COPY src/ /app/")   # {"event": "step_start", "step": 3, ...}
    with log.blob("push", digest, size, where="docker://r/app") as count:
        count(4096)                             # bytes moved so far

``fmt="text"`` (Kaniko's ``text``/``color``) writes ``[3/9] COPY src/ /app/`` and one line per
blob (a live bar on a terminal); ``fmt="json"`` (Kaniko's ``--log-format json``) writes one JSON
object per line. :meth:`BuildLog.stream` is a text stream for everything else that prints (RUN
output, warnings): in json mode each line becomes a ``message`` event.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import io
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

__all__ = ["BuildLog", "LOG_FORMATS", "human_bytes", "watch_growth"]

LOG_FORMATS = ("text", "color", "json")


def human_bytes(n: float) -> str:
    """``1536`` -> ``1.5 KiB``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@contextmanager
def watch_growth(directory: Path, pattern: str, count: Callable[[int], None], *,
                 every: float = 0.1) -> Iterator[None]:
    """While the body runs, report how the files matching ``pattern`` in ``directory`` grow
    (a download another function writes to a temp file there); for terminal progress bars."""
    stop = threading.Event()
    seen = 0

    def poll() -> None:
        nonlocal seen
        while not stop.wait(every):
            size = 0
            for p in directory.glob(pattern):
                with contextlib.suppress(OSError):
                    size += p.stat().st_size
            if size > seen:
                count(size - seen)
                seen = size

    t = threading.Thread(target=poll, name="trustbuild-progress", daemon=True)
    t.start()
    try:
        yield
    finally:
        stop.set()
        t.join()


class _LineStream(io.TextIOBase):
    """A text stream that hands every complete line to ``emit`` (json mode's stderr)."""

    def __init__(self, emit: Callable[[str], None]) -> None:
        super().__init__()
        self._emit = emit
        self._buf = ""
        self._lock = threading.Lock()

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        with self._lock:
            self._buf += s
            *lines, self._buf = self._buf.split("\n")
        for line in lines:
            self._emit(line)
        return len(s)

    def flush(self) -> None:
        with self._lock:
            rest, self._buf = self._buf, ""
        if rest:
            self._emit(rest)


class BuildLog:
    """Progress and events of one build, as text or JSON lines on ``out``."""

    def __init__(self, out: TextIO, *, fmt: str = "text", timestamps: bool = False,
                 tty: bool | None = None) -> None:
        self.out = out
        self.json = fmt == "json"
        self.timestamps = timestamps
        if tty is None:
            isatty = getattr(out, "isatty", None)
            tty = bool(isatty()) if callable(isatty) else False
        self.tty = tty and not self.json
        self._lock = threading.Lock()
        self.stream: TextIO = (_LineStream(self._json_line)  # type: ignore[assignment]
                               if self.json else self._prefixing_stream())

    def _json_line(self, line: str) -> None:
        """A line printed by other code: ``[warning] ...`` lines are warnings, the rest
        messages."""
        if line.startswith("[warning] "):
            self.event("warning", msg=line[len("[warning] "):])
        else:
            self.event("message", msg=line)

    def _prefixing_stream(self) -> TextIO:
        if not self.timestamps:
            return self.out
        return _LineStream(self._text)  # type: ignore[return-value]

    # ------------------------------------------------------------------ primitives
    def _write(self, line: str) -> None:
        with self._lock:
            self.out.write(line + "\n")
            self.out.flush()

    def _text(self, line: str) -> None:
        self._write(f"{_now()} {line}" if self.timestamps else line)

    def event(self, kind: str, **fields: object) -> None:
        """One event: a JSON line in json mode (``time``, ``event``, fields), else nothing."""
        if self.json:
            self._write(json.dumps({"time": _now(), "event": kind, **fields}, sort_keys=False))

    def info(self, msg: str) -> None:
        """A plain message (``message`` event in json mode)."""
        if self.json:
            self.event("message", msg=msg)
        else:
            self._text(msg)

    def warning(self, msg: str) -> None:
        """``[warning] msg`` (``warning`` event in json mode)."""
        if self.json:
            self.event("warning", msg=msg)
        else:
            self._text(f"[warning] {msg}")

    def error(self, msg: str, *, kind: str = "error") -> None:
        """The failure (json mode: ``{"event": "error", "error": msg, "type": kind}``)."""
        self.event("error", error=msg, type=kind)

    # ------------------------------------------------------------------ steps
    def step_start(self, n: int, total: int, text: str, *, stage: str = "") -> None:
        """``[n/total] INSTRUCTION ...``."""
        if self.json:
            self.event("step_start", step=n, total=total, stage=stage, instruction=text)
        else:
            self._text(f"[{n}/{total}] {text}")

    def step_end(self, n: int, total: int, *, seconds: float, cached: bool = False,
                 stage: str = "") -> None:
        """End of a step (json only: text mode has the next header, and a cache hit is said by
        the RUN handler)."""
        self.event("step_end", step=n, total=total, stage=stage,
                   seconds=round(seconds, 3), cached=cached)

    # ------------------------------------------------------------------ blobs
    def mounted(self, digest: str, size: int, *, source: str, where: str) -> None:
        """A blob the registry mounted from another repository (nothing uploaded)."""
        if self.json:
            self.event("blob", direction="mount", digest=digest, size=size, bytes=0,
                       source=source, where=where)
            return
        self._text(f"mounted {digest.split(':', 1)[-1][:12]} {human_bytes(size)} from "
                   f"{source} into {where}")

    @contextmanager
    def blob(self, direction: str, digest: str, size: int, *,
             where: str) -> Iterator[Callable[[int], None]]:
        """Report one blob moving (``pull``/``push``); the caller calls ``count(n_bytes)``."""
        started = time.monotonic()
        done = 0
        last_draw = 0.0
        short = digest.split(":", 1)[-1][:12]

        def count(n: int) -> None:
            nonlocal done, last_draw
            done += n
            if self.tty:
                now = time.monotonic()
                if now - last_draw >= 0.1 or done >= size:
                    last_draw = now
                    self._bar(direction, short, done, size, now - started)

        yield count
        if done > size:
            done = size if size else done  # a retried upload re-reads the blob
        seconds = max(time.monotonic() - started, 1e-6)
        rate = done / seconds
        if self.json:
            self.event("blob", direction=direction, digest=digest, size=size, bytes=done,
                       seconds=round(seconds, 3), bytes_per_second=int(rate), where=where)
            return
        if self.tty:
            with self._lock:
                self.out.write("\r\x1b[K")
        verb = "pulled" if direction == "pull" else "pushed"
        self._text(f"{verb} {short} {human_bytes(done)} in {seconds:.1f}s "
                   f"({human_bytes(rate)}/s) {where}")

    def _bar(self, direction: str, short: str, done: int, size: int, seconds: float) -> None:
        width = 30
        frac = min(1.0, done / size) if size else 1.0
        fill = int(frac * width)
        rate = done / max(seconds, 1e-6)
        with self._lock:
            self.out.write(f"\r\x1b[K{direction} {short} [{'#' * fill}{'.' * (width - fill)}] "
                           f"{human_bytes(done)}/{human_bytes(size)} {human_bytes(rate)}/s")
            self.out.flush()

    def close(self) -> None:
        """Flush a partial line of the json/timestamp stream."""
        if self.stream is not self.out:
            self.stream.flush()

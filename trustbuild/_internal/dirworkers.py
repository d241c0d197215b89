"""File-creating work on two threads, one directory per thread.

Creating an inode costs far more kernel time than deciding what to create (parsing a tar header,
walking a build context); the kernel work releases the GIL. :class:`DirWorkers` runs such tasks
on threads while the caller goes on, with the rules that keep the result identical to doing
them in order:

- tasks for one directory always run on the same thread, in submission order (two threads
  creating in one directory would only contend for its lock);
- each task is known by a key (its path); the caller asks :meth:`DirWorkers.busy` and calls
  :meth:`DirWorkers.wait` before anything that could meet a task not yet done (the same path
  again, a hardlink to it, removing a directory, reading the tree);
- the bytes a task holds (file contents read ahead) are bounded;
- the first failure stops the tasks not yet started and is raised in the caller, as
  :class:`TaskFailed` naming its key, at the next :meth:`check`, :meth:`submit` or :meth:`wait`.

Usage::

    workers = DirWorkers()
    try:
        workers.submit("etc/motd", "etc", lambda: write(...), size=len(data))
        ...
        workers.wait()
    finally:
        workers.close()
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

__all__ = ["DirWorkers", "TaskFailed", "THREADS", "MAX_BUFFERED"]

THREADS = 2
MAX_BUFFERED = 16 << 20

_Task = tuple[str, int, Callable[[], None], Callable[[], None] | None]


class TaskFailed(Exception):
    """A task's exception, with the key it was submitted under."""

    def __init__(self, key: str, error: BaseException) -> None:
        super().__init__(f"{key}: {error}")
        self.key, self.error = key, error


class DirWorkers:
    """Tasks on :data:`THREADS` threads, routed by directory; see the module docstring."""

    def __init__(self, *, name: str = "dirworker", max_buffered: int = MAX_BUFFERED) -> None:
        self._cond = threading.Condition()
        self._max = max_buffered
        self._queues: list[queue.SimpleQueue[_Task | None]] = [
            queue.SimpleQueue() for _ in range(THREADS)]
        self._threads = [threading.Thread(target=self._work, args=(q,), daemon=True,
                                          name=f"{name}-{i}")
                         for i, q in enumerate(self._queues)]
        for t in self._threads:
            t.start()
        self._pending: dict[str, int] = {}  # key -> tasks not done
        self._buffered = 0
        self._error: TaskFailed | None = None
        self._closed = False

    def _work(self, q: queue.SimpleQueue[_Task | None]) -> None:
        while (task := q.get()) is not None:
            key, size, fn, cleanup = task
            try:
                with self._cond:
                    failed = self._error is not None
                if not failed:
                    fn()
            except BaseException as exc:  # noqa: BLE001 - raised in the caller
                with self._cond:
                    if self._error is None:
                        self._error = TaskFailed(key, exc)
            finally:
                if cleanup is not None:
                    cleanup()
                with self._cond:
                    left = self._pending[key] - 1
                    if left:
                        self._pending[key] = left
                    else:
                        del self._pending[key]
                    self._buffered -= size
                    self._cond.notify_all()

    @property
    def pending(self) -> bool:
        """Whether any task is not done."""
        return bool(self._pending)

    def busy(self, key: str) -> bool:
        """Whether a task submitted under ``key`` is not done."""
        return key in self._pending

    def submit(self, key: str, directory: str, fn: Callable[[], None], *, size: int = 0,
               cleanup: Callable[[], None] | None = None) -> None:
        """Queue ``fn`` (holding ``size`` bytes) for ``directory``'s thread; ``cleanup`` runs
        after it in any case (also when it is skipped after a failure)."""
        try:
            self.check()
            with self._cond:
                while self._buffered and self._buffered + size > self._max:
                    self._cond.wait()
                self._pending[key] = self._pending.get(key, 0) + 1
                self._buffered += size
        except BaseException:
            if cleanup is not None:
                cleanup()
            raise
        self._queues[hash(directory) % THREADS].put((key, size, fn, cleanup))

    def check(self) -> None:
        """Raise the first failure (:class:`TaskFailed`), if any."""
        with self._cond:
            error = self._error
        if error is not None:
            raise error

    def wait(self) -> None:
        """Until every task is done; then :meth:`check`."""
        with self._cond:
            while self._pending:
                self._cond.wait()
        self.check()

    def close(self) -> None:
        """Let the queued tasks finish (or be skipped after a failure), stop the threads."""
        if self._closed:
            return
        self._closed = True
        for q in self._queues:
            q.put(None)
        for t in self._threads:
            t.join()

"""Run the producer side of a generator in a thread, with a bounded queue between them.

Decode, inference and encode overlap this way; the bound keeps memory flat however large
the frames are.
"""

from __future__ import annotations

import queue
import threading
from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")
_END = object()


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def threaded(source: Iterable[T], maxsize: int = 8) -> Iterator[T]:
    """Yield the items of ``source``, produced by a background thread."""
    q: "queue.Queue[object]" = queue.Queue(maxsize)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in source:
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(_END)
        except BaseException as exc:  # re-raised in the consumer
            q.put(_Failure(exc))

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        thread.join(timeout=5)


class ThreadedSink:
    """Consume items with ``fn`` in a background thread; ``close()`` waits and re-raises."""

    def __init__(self, fn: Callable[[T], None], maxsize: int = 8) -> None:
        self._fn = fn
        self._q: "queue.Queue[object]" = queue.Queue(maxsize)
        self._error: "BaseException | None" = None
        self._stopped = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._q.get()
            if item is _END:
                return
            if self._error is None and not self._stopped:
                try:
                    self._fn(item)  # type: ignore[arg-type]
                except BaseException as exc:
                    self._error = exc

    def put(self, item: T) -> None:
        if self._error is not None:
            raise self._error
        self._q.put(item)

    def close(self) -> None:
        self._q.put(_END)
        self._thread.join()
        if self._error is not None:
            raise self._error

    def abort(self) -> None:
        """Skip what is queued and wait for the item in hand; no-op after ``close``.

        Call it before closing what ``fn`` writes to: the thread must not touch it after."""
        if self._thread.is_alive():
            self._stopped = True
            self._q.put(_END)
            self._thread.join()

"""Plumbing of file ingest: keep the parse workers busy while the database writer writes.

Parse results come back in order from a bounded window of worker tasks (memory stays flat
however many files there are), and a writer thread commits one batch while the next ones are
parsed and received: the thread waits on the database with the GIL released, so the caller can
keep handing work to the workers in the meantime.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future
from itertools import islice
from types import TracebackType
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def ordered_results(
    pool: Executor, fn: Callable[[T], R], items: Iterable[T], *, chunk: int, window: int
) -> Iterator[R]:
    """``map(fn, items)`` in ``pool``: tasks of ``chunk`` items, at most ``window`` in flight.

    The first ``window`` tasks are submitted now, before the results are asked for."""
    source = iter(items)
    pending: deque[Future[list[R]]] = deque()

    def submit() -> None:
        part = list(islice(source, chunk))
        if part:
            pending.append(pool.submit(_apply, fn, part))

    for _ in range(window):
        submit()
    return _in_order(pending, submit)


def _in_order(pending: deque[Future[list[R]]], submit: Callable[[], None]) -> Iterator[R]:
    while pending:
        results = pending.popleft().result()
        submit()
        yield from results


def _apply(fn: Callable[[T], R], part: list[T]) -> list[R]:
    return [fn(item) for item in part]


_STOP = object()


class BackgroundWriter(Generic[T]):
    """Runs ``write(batch)`` for each batch :meth:`put`, in order, in one thread.

    At most ``depth`` batches wait; :meth:`put` blocks beyond that, so a slow database slows
    the caller instead of filling memory. The first error of ``write`` is raised by the next
    :meth:`put` or on leaving the ``with`` block (later batches are then not written).
    """

    def __init__(self, write: Callable[[T], object], depth: int = 2) -> None:
        self._write = write
        self._queue: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="ingest-writer", daemon=True)
        self._thread.start()

    def put(self, batch: T) -> None:
        """Queue ``batch`` for writing."""
        self._raise()
        self._queue.put(batch)

    def _run(self) -> None:
        while (batch := self._queue.get()) is not _STOP:
            if self._error is None:
                try:
                    self._write(batch)  # type: ignore[arg-type]
                except BaseException as error:  # handed to the caller's thread
                    self._error = error

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def __enter__(self) -> BackgroundWriter[T]:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._queue.put(_STOP)
        self._thread.join()
        if kind is None:
            self._raise()

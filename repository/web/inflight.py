"""Writes in progress, so that a worker told to stop (SIGTERM) lets them finish first.

uvicorn stops taking connections on SIGTERM and waits for the requests it has (up to
``dicom-repo serve --shutdown-timeout``), then cancels the rest. A STOW-RS cancelled there goes
on in its thread; before the worker closes its store it waits for every such write to commit and
move its file into place (:meth:`InFlight.wait`), so no STOW-RS is left half done.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class InFlight:
    """A count of writes running in threads, and a way to wait until there are none."""

    def __init__(self) -> None:
        self.count = 0
        self._changed = threading.Condition()

    @contextmanager
    def hold(self) -> Iterator[None]:
        """Count the block (run in the writing thread) as a write in progress."""
        with self._changed:
            self.count += 1
        try:
            yield
        finally:
            with self._changed:
                self.count -= 1
                self._changed.notify_all()

    def wait(self, timeout: float) -> bool:
        """Wait until no write is in progress (at most ``timeout`` seconds); True if none is."""
        with self._changed:
            return self._changed.wait_for(lambda: self.count == 0, timeout)

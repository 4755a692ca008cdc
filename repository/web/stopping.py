"""Ending this worker's change streams at once when it is told to stop (SIGTERM, SIGINT).

A ``/changes/stream`` answer never ends by itself. uvicorn, told to stop, waits
``--shutdown-timeout`` seconds for the requests it has and then cancels what is left, with a
traceback in the log for each: every open stream would hold the worker that long and end that
way. Instead, the application chains a handler onto the signals uvicorn listens to
(:func:`chain_stop_signals`), and :class:`OpenStreams` ends every open stream right away; the
client's EventSource reconnects with its ``Last-Event-ID`` and resumes on another worker. Other
requests in progress finish as before; one that has not when the shutdown timeout runs out
(an upload that trickles in) is cancelled by uvicorn and logged in one line
(:class:`CancelledAtStop`), not as a traceback.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

log = logging.getLogger("repository.web")

STOP = object()
"""Put into an open stream's queue: the worker is stopping, end the stream."""


class OpenStreams:
    """The queues of this worker's open change streams, so that they can be ended together."""

    def __init__(self) -> None:
        self._queues: dict[int, asyncio.Queue[Any]] = {}
        self.stopping = False

    def add(self, key: int, queue: asyncio.Queue[Any]) -> None:
        """Register an open stream's queue (ended at once if the worker is stopping already)."""
        self._queues[key] = queue
        if self.stopping:
            queue.put_nowait(STOP)

    def remove(self, key: int) -> None:
        """Forget a stream that ended."""
        self._queues.pop(key, None)

    def stop(self) -> None:
        """End every open stream (called in the event loop)."""
        self.stopping = True
        for queue in self._queues.values():
            queue.put_nowait(STOP)


def chain_stop_signals(loop: asyncio.AbstractEventLoop, on_stop: Callable[[], None]) -> None:
    """Run ``on_stop`` in ``loop`` when SIGTERM or SIGINT arrives, then the handler that was
    there (uvicorn's). Only in the main thread, and only over a handler that is a function (a
    server that installed none keeps the default behaviour)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for number in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(number)
        if not callable(previous):
            continue

        def handler(sig: int, frame: FrameType | None, previous: Any = previous) -> None:
            loop.call_soon_threadsafe(on_stop)
            previous(sig, frame)

        signal.signal(number, handler)


class CancelledAtStop:
    """ASGI middleware (outermost): a request uvicorn cancels because the worker is stopping and
    its ``--shutdown-timeout`` ran out is logged in one line instead of a traceback."""

    def __init__(self, app: Any, streams: OpenStreams) -> None:
        self.app = app
        self.streams = streams

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await self.app(scope, receive, send)
        except asyncio.CancelledError:
            if scope["type"] != "http" or not self.streams.stopping:
                raise
            log.warning("request cancelled at shutdown (--shutdown-timeout ran out): %s %s",
                        scope["method"], scope["path"])  # fmt: skip

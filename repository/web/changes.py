"""The change feed over HTTP: a page of the change log, and a server-sent-events stream.

``GET /changes?since=SEQ&limit=N`` answers the committed changes after ``SEQ`` as a JSON array
(the objects ``dicom-repo changes --json`` prints). ``GET /changes/stream?since=SEQ`` pushes every
change committed by any process on the database as an SSE event (``id:`` is the seq, ``event:``
the kind); a client that reconnects with ``Last-Event-ID`` resumes after it, missing nothing.
Without ``since`` the stream starts with the changes committed after it was opened.

A position older than the change log keeps (``dicom-repo changes compact`` removed the changes
after it) is answered ``410 Gone`` with a JSON error naming the oldest position still served
(``horizon``: changes after it are kept) and the newest seq; an open stream whose subscription
falls behind a compaction is ended with an ``event: gap`` message, so that the client's
reconnect gets the 410. The client then
re-reads the state it mirrors (QIDO-RS) and follows on from ``newest``.
"""

from __future__ import annotations

import asyncio
import itertools
import math
from collections.abc import AsyncIterator
from typing import Any

import orjson
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from .. import changelog
from ..cli.feed import event_json
from ..errors import FeedGapError
from ..events import Event
from ..store import Store
from .numbers import optional_int
from .stopping import STOP, OpenStreams

MAX_PAGE = 10_000
KEEP_ALIVE_SECONDS = 15.0


def _seq(name: str, value: str | None) -> int | None:
    """A change seq (a PostgreSQL ``bigint``), None when absent."""
    return optional_int(name, value, maximum=changelog.SEQ_MAX)


async def page(request: Request) -> Response:
    """``GET /changes?since=SEQ&limit=N`` (default since 0, limit 1000, at most 10000)."""
    since = _seq("since", request.query_params.get("since")) or 0
    given = request.query_params.get("limit")
    limit = optional_int("limit", given, minimum=1, maximum=changelog.SEQ_MAX)
    limit = min(limit if limit is not None else 1000, MAX_PAGE)
    store = request.app.state.store
    try:
        events = await run_in_threadpool(store.changes, since, limit)
    except FeedGapError as gap:
        return await gone(store, gap)
    body = orjson.dumps([event_json(e) for e in events])
    return Response(body, media_type="application/json")


def _oldest_kept(store: Store, gap: FeedGapError) -> int | None:
    try:
        kept = store.changes(gap.horizon, 1)
    except FeedGapError:  # compacted again meanwhile
        return None
    return kept[0].seq if kept else None


async def gone(store: Store, gap: FeedGapError) -> Response:
    """``410 Gone``: the changes after the client's position were compacted away.

    ``oldest_kept_seq``: the oldest change still kept; ``horizon``: the oldest position still
    served (``since=horizon``); ``newest``: the newest seq, to follow on from after a resync.
    """
    oldest = await run_in_threadpool(_oldest_kept, store, gap)
    body = {"error": str(gap), "since": gap.since, "horizon": gap.horizon,
            "oldest_kept_seq": oldest, "newest": gap.newest}  # fmt: skip
    return JSONResponse(body, status_code=410)


class StreamPositions:
    """The last seq each open change stream of this worker sent, for the feed-lag metric."""

    def __init__(self) -> None:
        self.sent: dict[int, int] = {}
        self._next = itertools.count()

    def open(self, seq: int) -> int:
        """Register a stream that has sent everything up to ``seq``; its key."""
        key = next(self._next)
        self.sent[key] = seq
        return key

    def lag(self, engine: Engine) -> float:
        """Changes committed after the slowest open stream's last one (NaN: database away)."""
        if not self.sent:
            return 0.0
        slowest = min(self.sent.values())
        try:
            return float(max(0, _newest(engine) - slowest))
        except Exception:  # an outage is reported by the availability metrics
            return math.nan


def _newest(engine: Engine) -> int:
    with engine.connect() as conn:
        return changelog.max_seq(conn)


def _sse(event: Event) -> bytes:
    data = orjson.dumps(event_json(event)).decode()
    return f"id: {event.seq}\nevent: {event.kind}\ndata: {data}\n\n".encode()


def _gap(gap: FeedGapError) -> bytes:
    """The last message of a stream that fell behind a compaction: ``event: gap`` with the 410
    body's fields, its ``id:`` a position below the horizon, so that the client's reconnect
    (``Last-Event-ID``, even when it had been handed no change yet) is answered 410."""
    data = orjson.dumps({"error": str(gap), "since": gap.since, "horizon": gap.horizon,
                         "newest": gap.newest}).decode()  # fmt: skip
    return f"id: {gap.since}\nevent: gap\ndata: {data}\n\n".encode()


async def stream(request: Request) -> Response:
    """``GET /changes/stream`` as server-sent events (resumes from ``Last-Event-ID``)."""
    since = _seq("Last-Event-ID", request.headers.get("last-event-id"))
    if since is None:
        since = _seq("since", request.query_params.get("since"))
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()  # Event, FeedGapError or STOP

    def deliver(item: Event | FeedGapError) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, item)

    store = request.app.state.store
    try:
        subscription = await run_in_threadpool(
            lambda: store.subscribe("*", deliver, include_made_in_client=True, since=since,
                                    on_gap=deliver)
        )  # fmt: skip
    except FeedGapError as gap:
        return await gone(store, gap)
    positions: StreamPositions = request.app.state.feed_positions
    start = since if since is not None else await run_in_threadpool(_newest, store.engine)
    key = positions.open(start)
    streams: OpenStreams = request.app.state.open_streams
    streams.add(key, queue)

    async def body() -> AsyncIterator[bytes]:
        try:
            yield b": dicom-repo change feed\n\n"
            while True:
                try:
                    item = await asyncio.wait_for(queue.get(), KEEP_ALIVE_SECONDS)
                except TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                if item is STOP:  # the worker is stopping: the client resumes elsewhere
                    yield b": the server is stopping; reconnect with Last-Event-ID\n\n"
                    return
                if isinstance(item, FeedGapError):  # fell behind a compaction
                    yield _gap(item)
                    return
                yield _sse(item)
                positions.sent[key] = item.seq
        finally:
            subscription.unsubscribe()
            positions.sent.pop(key, None)
            streams.remove(key)

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(body(), media_type="text/event-stream", headers=headers)

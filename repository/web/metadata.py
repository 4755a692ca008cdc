"""WADO-RS metadata (PS3.18 10.4.1.1.2): DICOM JSON of a study, series or instance.

Answered from the database alone (no file is read): each instance's DICOM JSON, built from its
stored metadata the first time and kept (:mod:`.metadata_cache`), with every ``BulkDataURI``
pointing at this server's bulk-data endpoint for that instance (built from the host the request
came to, so it works behind a proxy). The instances are read a hundred at a time and streamed in
parts of about half a megabyte.
"""

from __future__ import annotations

from collections.abc import Iterator

import anyio
from prometheus_client import Counter
from sqlalchemy import Engine
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from ..kept_json import dicom_json
from .errors import not_found, path_uids
from .metadata_cache import Fill, Row, answer_rows, fill, with_root
from .negotiation import json_media_type
from .qido import dicomweb_root
from .routing import database_writable, read_engine

CHUNK = 100
"""Instances read at a time."""

PART = 1 << 19
"""Bytes per part of the streamed answer, about: each part is copied a few times on its way out
(joined, framed, sent), faster while it fits the processor's cache (measured on SQLite: a
series answered in parts of 3 MB took 1.4 times as long)."""

KEEP_AT_MOST = 32 << 20
"""Bytes of built JSON one answer holds on to until it is kept (with, beside each, the metadata
text it was built from, about as large); the JSON of the instances past it is built again, and
kept, by a later answer. Bounded so that the answers a worker streams at once (one per database
slot) stay within a few hundred megabytes."""


class _Rows:
    """The instances of one answer, their first batch read before the response starts. The JSON
    built for instances that had none is collected in :attr:`fills` (up to
    :data:`KEEP_AT_MOST` bytes), to be kept once the answer is sent.
    """

    def __init__(self, engine: Engine, uids: list[str]) -> None:
        self.conn = engine.connect()
        self.fills: list[Fill] = []
        self.held = 0
        self.kept = self.built = 0
        self.closed = False
        self.batches = answer_rows(self.conn, uids, CHUNK)  # reads nothing until next()
        try:
            self.first = next(self.batches, [])
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Stop reading (a query still streaming is cancelled) and give the connection back;
        once (later calls do nothing)."""
        if self.closed:
            return
        self.closed = True
        try:
            self.batches.close()
        finally:
            self.conn.close()

    def _json(self, batch: list[Row]) -> list[bytes]:
        pieces = []
        built_before = self.built
        for id_, study, series, sop, generation, data, text in batch:
            if data is None:
                assert text is not None  # the metadata column is NOT NULL
                data = dicom_json((study, series, sop), text)
                self.built += 1
                if self.held + len(data) <= KEEP_AT_MOST:
                    self.fills.append((id_, study, generation or 0, data, text))
                    self.held += len(data)
            pieces.append(data if isinstance(data, bytes) else data.encode())
        self.kept += len(batch) - (self.built - built_before)
        return pieces

    def chunks(self, root: str) -> Iterator[bytes]:
        """The JSON array in parts of about :data:`PART` bytes; closes the connection at the end."""
        try:
            separator = b"["
            batch = self.first
            while batch:
                for part in _parts(self._json(batch)):
                    part[0] = separator + part[0]
                    yield with_root(b",".join(part), root)
                    separator = b","
                batch = next(self.batches, [])
            yield b"]" if separator == b"," else b"[]"
        finally:
            self.close()


def _parts(pieces: list[bytes]) -> Iterator[list[bytes]]:
    """``pieces`` in runs of about :data:`PART` bytes (the last may be shorter)."""
    part: list[bytes] = []
    size = 0
    for piece in pieces:
        part.append(piece)
        size += len(piece)
        if size >= PART:
            yield part
            part, size = [], 0
    if part:
        yield part


async def _answer(request: Request, names: tuple[str, ...], what: str) -> Response:
    media_type = json_media_type(request)
    uids = path_uids(request, *names)
    rows = await run_in_threadpool(_Rows, await read_engine(request), uids)
    if not rows.first or request.method == "HEAD":
        await run_in_threadpool(rows.close)
    if not rows.first:
        raise not_found(f"no {what} {uids[-1]} here" + (f" (study {uids[0]})" if uids[1:] else ""))
    if request.method == "HEAD":  # the headers only: nothing to build
        return Response(media_type=media_type)
    keep = None  # kept on the primary, never tried on a standby
    if not request.app.state.settings.read_only and await database_writable(request):
        keep = BackgroundTask(_keep, request.app.state.store.engine, rows)
    counted = request.app.state.metrics.metadata
    return _Answer(rows, dicomweb_root(request), media_type, keep, counted)


class _Answer(StreamingResponse):
    """The streamed answer, which closes its rows once it is over, however it ends: sent whole,
    or the client gone before or while it streams (then its parts are never all asked for)."""

    def __init__(
        self,
        rows: _Rows,
        root: str,
        media_type: str,
        keep: BackgroundTask | None,
        counted: Counter | None = None,
    ) -> None:
        super().__init__(rows.chunks(root), media_type=media_type, background=keep)
        self.rows = rows
        self.counted = counted  # instances answered, by where their JSON came from

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                await run_in_threadpool(self.rows.close)
            if self.counted is not None:
                self.counted.labels("kept").inc(self.rows.kept)
                self.counted.labels("built").inc(self.rows.built)


async def _keep(engine: Engine, rows: _Rows) -> None:
    """After the answer: keep the JSON built for it (see :mod:`.metadata_cache`)."""
    if rows.fills:
        await run_in_threadpool(fill, engine, rows.fills)


async def study_metadata(request: Request) -> Response:
    """``GET /studies/{study}/metadata``."""
    return await _answer(request, ("study",), "instances in study")


async def series_metadata(request: Request) -> Response:
    """``GET /studies/{study}/series/{series}/metadata``."""
    return await _answer(request, ("study", "series"), "instances in series")


async def instance_metadata(request: Request) -> Response:
    """``GET /studies/{study}/series/{series}/instances/{instance}/metadata``."""
    return await _answer(request, ("study", "series", "instance"), "instance")

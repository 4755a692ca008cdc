"""The DICOMweb application factory: one table of routes, settings in, no state at import.

``create_app(settings)`` returns a Starlette application whose store is opened when the
application starts (in each worker process) and closed when it stops. ``app_from_env()`` is the
factory uvicorn calls in every worker of ``dicom-repo serve``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from anyio import to_thread
from sqlalchemy.engine import make_url
from starlette.applications import Starlette
from starlette.datastructures import State
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from .. import connect
from ..config import resolve_url
from . import changes, delete, health, metadata, qido, rendered, retrieve, stow, viewer
from .access_log import AccessLog
from .admission import Admission, Busy, Slots
from .availability import UNAVAILABLE_ERRORS, DatabaseState, retry_after, unavailable
from .changes import StreamPositions
from .errors import file_gone, http_error, server_error
from .inflight import InFlight
from .limits import RequestLimits
from .metrics import Metrics, RequestMetrics, metrics_endpoint
from .security import BearerToken, BodyLimit, WorkerHeader, _BodyTooLarge
from .settings import Settings
from .stopping import CancelledAtStop, OpenStreams, chain_stop_signals
from .timeouts import RequestTimeout, unless_timed_out
from .timeouts import watch as watch_deadlines

ROOT = "/dicom-web"

ROUTES: tuple[tuple[str, Any, tuple[str, ...]], ...] = (
    ("/studies", qido.studies, ("GET",)),
    ("/studies", stow.store_instances, ("POST",)),
    ("/series", qido.study_series, ("GET",)),
    ("/instances", qido.instances, ("GET",)),
    ("/studies/{study}", stow.store_instances, ("POST",)),
    ("/studies/{study}", delete.delete_study, ("DELETE",)),
    ("/studies/{study}/series/{series}", delete.delete_series, ("DELETE",)),
    ("/studies/{study}/series", qido.study_series, ("GET",)),
    ("/studies/{study}/instances", qido.instances, ("GET",)),
    ("/studies/{study}/metadata", metadata.study_metadata, ("GET",)),
    ("/studies/{study}/series/{series}/instances", qido.instances, ("GET",)),
    ("/studies/{study}/series/{series}/metadata", metadata.series_metadata, ("GET",)),
    ("/studies/{study}/series/{series}/instances/{instance}", retrieve.instance, ("GET",)),
    ("/studies/{study}/series/{series}/instances/{instance}", delete.delete_instance,
     ("DELETE",)),
    ("/studies/{study}/series/{series}/instances/{instance}/metadata",
     metadata.instance_metadata, ("GET",)),
    ("/studies/{study}/series/{series}/instances/{instance}/frames/{frames}",
     retrieve.frames, ("GET",)),
    ("/studies/{study}/series/{series}/instances/{instance}/bulkdata/{path:path}",
     retrieve.bulkdata, ("GET",)),
    ("/studies/{study}/series/{series}/instances/{instance}/rendered",
     rendered.instance_rendered, ("GET",)),
    ("/studies/{study}/series/{series}/instances/{instance}/frames/{frames}/rendered",
     rendered.frames_rendered, ("GET",)),
    ("/studies/{study}/thumbnail", rendered.thumbnail, ("GET",)),
    ("/studies/{study}/series/{series}/thumbnail", rendered.thumbnail, ("GET",)),
    ("/studies/{study}/series/{series}/instances/{instance}/thumbnail",
     rendered.thumbnail, ("GET",)),
    ("/studies/{study}/series/{series}/instances/{instance}/frames/{frames}/thumbnail",
     rendered.thumbnail, ("GET",)),
)  # fmt: skip
"""The DICOMweb routes, relative to :data:`ROOT`: path, endpoint, methods."""

WRITES_TIMEOUT = 60.0
"""Seconds a stopping worker waits for its STOW-RS writes to finish before closing its store."""


def _by_method(endpoints: dict[str, Any]) -> Any:
    """One endpoint answering each method with its own (so a 405 lists them all in Allow)."""

    async def endpoint(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        return await endpoints[method](request)  # type: ignore[no-any-return]

    return endpoint


def _routes(settings: Settings) -> list[BaseRoute]:
    grouped: dict[str, dict[str, Any]] = {}
    for path, endpoint, methods in ROUTES:
        grouped.setdefault(path, {}).update(dict.fromkeys(methods, endpoint))
    routes: list[BaseRoute] = [
        Route(ROOT + path, _by_method(by) if len(set(by.values())) > 1 else next(iter(by.values())),
              methods=list(by), name=path)
        for path, by in grouped.items()
    ]  # fmt: skip
    routes += [
        Route("/changes", changes.page, methods=["GET"]),
        Route("/changes/stream", changes.stream, methods=["GET"]),
        Route("/healthz", health.healthz, methods=["GET"]),
        Route("/readyz", health.readyz, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
    ]
    if settings.viewer_dir is not None:
        routes += viewer.routes(settings.viewer_dir)
    return routes


def _middleware(settings: Settings, state: Any) -> list[Middleware]:
    stack = [Middleware(CancelledAtStop, streams=state.open_streams), Middleware(WorkerHeader),
             Middleware(RequestMetrics, metrics=state.metrics)]  # fmt: skip
    if settings.access_log:
        stack.append(Middleware(AccessLog))
    stack += [
        Middleware(RequestTimeout, seconds=settings.request_timeout,
                   retry_after=settings.retry_after),
        Middleware(RequestLimits, max_url=settings.max_url, max_headers=settings.max_headers,
                   body_timeout=settings.body_timeout),
        Middleware(BodyLimit, max_body=settings.max_body),
    ]  # fmt: skip
    if settings.cors_origins:
        stack.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(settings.cors_origins),
                allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
                allow_headers=["*"],
                expose_headers=["Warning", "Content-Type"],
            )
        )
    if settings.token:
        stack.append(Middleware(BearerToken, token=settings.token))
    stack.append(Middleware(Admission, slots=state.slots, retry_after=settings.retry_after))
    stack.append(Middleware(GZipMiddleware, minimum_size=1024, compresslevel=4))
    return stack


async def _too_large(request: Request, exc: Exception) -> Response:
    max_body = request.app.state.settings.max_body
    return JSONResponse(
        {"error": f"request body larger than the limit of {max_body} bytes"}, status_code=413
    )


def create_app(settings: Settings | None = None, **overrides: Any) -> Starlette:
    """A DICOMweb application for ``settings`` (keyword arguments override single fields).

    ``create_app(url="sqlite:///x.db", storage=Path("files"), viewer_dir=Path("dist"))``.
    """
    settings = replace(settings or Settings(), **overrides)
    if isinstance(settings.storage, str):
        settings = replace(settings, storage=Path(settings.storage))

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.store = connect(settings.url, read_urls=settings.read_urls,
                                  engine_options=pool_options(settings))  # fmt: skip
        router = app.state.store.router
        for engine in (app.state.store.engine, *(s.engine for s in router.standbys)):
            app.state.database.watch(engine)
            watch_deadlines(engine)
        to_thread.current_default_thread_limiter().total_tokens = settings.threads
        chain_stop_signals(asyncio.get_running_loop(), state.open_streams.stop)
        try:
            yield
        finally:
            await to_thread.run_sync(state.writes.wait, WRITES_TIMEOUT, abandon_on_cancel=True)
            app.state.store.close()

    state = State()
    state.settings = settings
    state.metrics = Metrics()
    state.slots = Slots(settings.db_slots, settings.max_queue, settings.queue_timeout)
    state.database = DatabaseState()
    state.feed_positions = StreamPositions()
    state.open_streams = OpenStreams()
    state.writes = InFlight()
    handlers: dict[Any, Any] = dict.fromkeys(UNAVAILABLE_ERRORS, unavailable)
    handlers.update({HTTPException: http_error, _BodyTooLarge: _too_large, Busy: _busy,
                     FileNotFoundError: file_gone,
                     Exception: server_error})  # fmt: skip
    handlers = {kind: unless_timed_out(handler) for kind, handler in handlers.items()}
    app = Starlette(routes=_routes(settings), middleware=_middleware(settings, state),
                    exception_handlers=handlers, lifespan=lifespan)  # fmt: skip
    app.state = state
    state.metrics.watch(state)
    return app


def pool_options(settings: Settings) -> dict[str, Any]:
    """The connection pool of a worker: a connection per database slot (:mod:`.admission`),
    and a few more for the change feed, the readiness check and answers kept after sending."""
    url = make_url(resolve_url(settings.url))
    if url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"):
        return {}  # one shared connection (StaticPool)
    return {"pool_size": settings.db_slots, "max_overflow": 4, "pool_timeout": 10}


async def _busy(request: Request, exc: Exception) -> Response:
    return JSONResponse({"error": f"server busy: {exc}; try again later"}, status_code=503,
                        headers={"Retry-After": retry_after(request)})  # fmt: skip


def app_from_env() -> Starlette:
    """The application configured by the environment (see :meth:`Settings.from_env`)."""
    return create_app(Settings.from_env())

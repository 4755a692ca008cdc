"""The DICOMweb application factory: one table of routes, settings in, no state at import.

``create_app(settings)`` returns a Starlette application whose store is opened when the
application starts (in each worker process) and closed when it stops. ``app_from_env()`` is the
factory uvicorn calls in every worker of ``dicom-repo serve``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from .. import connect
from . import changes, delete, metadata, qido, rendered, retrieve, stow, viewer
from .errors import http_error, server_error
from .security import BearerToken, BodyLimit, WorkerHeader, _BodyTooLarge
from .settings import Settings

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


def _routes(settings: Settings) -> list[BaseRoute]:
    routes: list[BaseRoute] = [
        Route(ROOT + path, endpoint, methods=list(methods)) for path, endpoint, methods in ROUTES
    ]
    routes += [
        Route("/changes", changes.page, methods=["GET"]),
        Route("/changes/stream", changes.stream, methods=["GET"]),
    ]
    if settings.viewer_dir is not None:
        routes += viewer.routes(settings.viewer_dir)
    return routes


def _middleware(settings: Settings) -> list[Middleware]:
    stack = [Middleware(WorkerHeader), Middleware(BodyLimit, max_body=settings.max_body)]
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
        app.state.store = connect(settings.url, read_urls=settings.read_urls)
        try:
            yield
        finally:
            app.state.store.close()

    app = Starlette(
        routes=_routes(settings),
        middleware=_middleware(settings),
        exception_handlers={
            HTTPException: http_error,
            _BodyTooLarge: _too_large,
            Exception: server_error,
        },
        lifespan=lifespan,
    )
    app.state.settings = settings
    return app


def app_from_env() -> Starlette:
    """The application configured by the environment (see :meth:`Settings.from_env`)."""
    return create_app(Settings.from_env())

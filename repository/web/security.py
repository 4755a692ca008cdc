"""ASGI middleware for the server's security rules: a bearer token and a request size limit.

Both wrap the whole application, so no request reaches a route (or the database) without
passing them. The token is compared in constant time; a body larger than the limit is refused
with 413 before the route reads past it.
"""

from __future__ import annotations

import hmac
import os

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

OPEN_PATHS = frozenset({"/healthz", "/readyz"})
"""Paths answered without the token: liveness and readiness probes, which reveal nothing."""


class BearerToken:
    """Require ``Authorization: Bearer <token>`` on every HTTP request (401 otherwise); the
    scheme is case-insensitive (RFC 9110 11.1), the token compared in constant time."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.expected = token.encode()

    def _valid(self, scope: Scope) -> bool:
        given = dict(scope["headers"]).get(b"authorization", b"")
        scheme, _, credentials = given.strip().partition(b" ")
        valid = hmac.compare_digest(credentials.strip(), self.expected)
        return scheme.lower() == b"bearer" and valid

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope.get("method") != "OPTIONS"
            and scope.get("path") not in OPEN_PATHS
        ) and not self._valid(scope):
            response = JSONResponse(
                {"error": "a valid bearer token is required (Authorization: Bearer ...)"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


class _BodyTooLarge(Exception):
    """A request body exceeds the configured limit (internal: answered with 413)."""


class BodyLimit:
    """Refuse request bodies over ``max_body`` bytes with 413."""

    def __init__(self, app: ASGIApp, max_body: int) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            await self._refuse(scope, receive, send)
            return
        received = 0
        started = False

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise _BodyTooLarge
            return message

        async def tracking(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited, tracking)
        except _BodyTooLarge:
            if not started:
                await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = JSONResponse(
            {"error": f"request body larger than the limit of {self.max_body} bytes"},
            status_code=413,
        )
        await response(scope, receive, send)


class WorkerHeader:
    """Name the answering worker process (``X-Dicom-Repo-Worker: <pid>``) on every response.

    Lets clients and tests see that several workers serve one database consistently.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.header = (b"x-dicom-repo-worker", str(os.getpid()).encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def add_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), self.header]
            await send(message)

        await self.app(scope, receive, add_header if scope["type"] == "http" else send)

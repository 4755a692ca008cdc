"""Limits on what a request may be: URL and header sizes, and how long its body may stall.

Checked before any route runs, each refusal a JSON error naming the limit:

- a path with query string longer than ``max_url`` bytes: 414;
- headers larger than ``max_headers`` bytes in all, or more than :data:`MAX_HEADER_COUNT`: 431;
- a body that sends nothing for ``body_timeout`` seconds (an upload that announced a gigabyte
  and sent ten bytes): 408, raised from the route's read of the body, so the route cleans up
  what it had received (STOW-RS deletes its ``.part`` files) and the connection is closed.
"""

from __future__ import annotations

import asyncio

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import WebError

MAX_HEADER_COUNT = 100


class BodyTimeout(WebError):
    """Raised when a request body sent nothing for the configured number of seconds."""

    def __init__(self, seconds: float) -> None:
        super().__init__(408, f"the request body sent nothing for {seconds:g} s")


class RequestLimits:
    """ASGI middleware enforcing the limits of the module docstring."""

    def __init__(self, app: ASGIApp, max_url: int, max_headers: int, body_timeout: float) -> None:
        self.app = app
        self.max_url = max_url
        self.max_headers = max_headers
        self.body_timeout = body_timeout

    def _refusal(self, scope: Scope) -> JSONResponse | None:
        url = len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"")
        if url > self.max_url:
            return JSONResponse(
                {"error": f"the URL is {url} bytes long; at most {self.max_url} are accepted"},
                status_code=414,
            )
        headers = scope["headers"]
        size = sum(len(name) + len(value) for name, value in headers)
        if size > self.max_headers or len(headers) > MAX_HEADER_COUNT:
            return JSONResponse(
                {"error": f"the request headers are {size} bytes in {len(headers)} fields; at "
                 f"most {self.max_headers} bytes in {MAX_HEADER_COUNT} fields are accepted"},
                status_code=431,
            )  # fmt: skip
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self._refusal(scope)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        timeout = self.body_timeout
        complete = False

        async def timed() -> Message:
            nonlocal complete
            if complete:  # the body is in; later receives wait for a disconnect, untimed
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), timeout)
            except TimeoutError:
                raise BodyTimeout(timeout) from None
            complete = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        await self.app(scope, timed, send)

"""JSON access logs (``dicom-repo serve --access-log``): one line per request on standard error.

Each line is an object: ``time`` (ISO 8601, UTC), ``worker`` (process id), ``client``,
``method``, ``path`` (without the query string, which may hold patient data), ``route`` (the
route's template), ``status``, ``bytes`` (of the answer's body) and ``seconds``. Written through
the ``repository.web.access`` logger, so an operator can send it elsewhere.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import sys
import time

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("repository.web.access")


def enable() -> None:
    """Send the access logger's lines, bare, to standard error (once per process)."""
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False


class AccessLog:
    """ASGI middleware writing the access log line of every HTTP request once it is answered."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.worker = os.getpid()
        enable()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        answer = {"status": 500, "bytes": 0}

        async def counting(message: Message) -> None:
            if message["type"] == "http.response.start":
                answer["status"] = message["status"]
            elif message["type"] == "http.response.body":
                answer["bytes"] += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, counting)
        finally:
            client = scope.get("client")
            line = {
                "time": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
                "worker": self.worker,
                "client": client[0] if client else None,
                "method": scope["method"],
                "path": scope["path"],
                "route": getattr(scope.get("route"), "path", None),
                **answer,
                "seconds": round(time.perf_counter() - started, 6),
            }
            log.info(orjson.dumps(line).decode())

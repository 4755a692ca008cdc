"""Liveness and readiness: two different questions an orchestrator or a load balancer asks.

- ``GET /healthz``: is this process alive and answering? Always 200 ``{"status": "ok"}`` while
  the event loop runs; it touches nothing else (a database outage must not get workers killed).
- ``GET /readyz``: should requests be sent here? 200 when the database answers and its schema is
  at the revision this code expects; else 503 with ``Retry-After`` and the reason. It takes no
  database slot (:mod:`.admission`), so it answers during load too. With read replicas it lists
  each standby and whether reads go to it (as last probed: reachable, lagging at most
  ``max_lag``); a standby out of use does not make the server unready (reads fall back on the
  primary).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .. import migrate
from .availability import DatabaseState, outage_reason, retry_after


async def healthz(request: Request) -> Response:
    """``GET /healthz``: 200 while the process serves."""
    return JSONResponse({"status": "ok"})


def _readiness(engine: Engine, state: DatabaseState) -> dict[str, Any]:
    expected = migrate.head_revision()
    try:
        current = migrate.current_revision(engine)
    except Exception as error:
        found = outage_reason(error)
        reason = found[0] if found else f"{type(error).__name__}: {str(error).strip()[:300]}"
        if found and found[1]:
            state.failed(reason)
        return {"status": "unavailable", "database": "unreachable", "error": reason,
                "expected_revision": expected}  # fmt: skip
    report = {"database": "reachable", "revision": current, "expected_revision": expected}
    if current != expected:
        return {"status": "unavailable", **report,
                "error": f"the database is at revision {current}, this server needs {expected} "
                "(dicom-repo db upgrade)"}  # fmt: skip
    return {"status": "ready", **report}


async def readyz(request: Request) -> Response:
    """``GET /readyz``: 200 when the database is reachable and at the expected revision."""
    state = request.app.state
    report = await run_in_threadpool(_readiness, state.store.engine, state.database)
    standbys = state.store.router.standbys
    if standbys:
        report["standbys"] = [{"standby": s.name, "usable": s.usable} for s in standbys]
    if report["status"] == "ready":
        return JSONResponse(report)
    return JSONResponse(report, status_code=503, headers={"Retry-After": retry_after(request)})

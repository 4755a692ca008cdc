"""Servers for the OHIF Viewer tests: ``dicom-repo serve`` itself, and Orthanc behind a proxy.

The viewer's ``dist/`` and ``/app-config.js`` are served by :func:`repository.web.viewer.
viewer_routes` (the code our own server uses); ``/dicom-web/...`` is forwarded to the upstream
server with the browser's ``Host`` header, so Orthanc builds its BulkDataURIs for this origin.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import uvicorn
from orthanc import free_port
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from repository.web.viewer import routes as viewer_routes

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


def proxy_app(viewer_dir: Path, upstream: str) -> Starlette:
    """OHIF at ``/`` and ``upstream`` (a DICOMweb root URL) at ``/dicom-web``."""
    client = httpx.AsyncClient(timeout=60)

    async def forward(request: Request) -> StreamingResponse:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        headers["host"] = request.headers.get("host", "")
        outgoing = client.build_request(
            request.method,
            f"{upstream.rstrip('/')}/{request.path_params['path']}",
            params=request.url.query or None,
            headers=headers,
            content=await request.body(),
        )
        answer = await client.send(outgoing, stream=True)
        kept = {k: v for k, v in answer.headers.items() if k.lower() not in _HOP_BY_HOP}
        kept.pop("content-encoding", None)  # aiter_bytes() decodes what the upstream compressed
        return StreamingResponse(
            answer.aiter_bytes(),
            status_code=answer.status_code,
            headers=kept,
            background=BackgroundTask(answer.aclose),
        )

    routes = [Route("/dicom-web/{path:path}", forward, methods=["GET", "POST"])]
    return Starlette(routes=routes + viewer_routes(viewer_dir))


@contextmanager
def serve_repository(cli: list[str], viewer_dir: Path, log: Path) -> Iterator[str]:
    """``dicom-repo serve --workers 2 --viewer DIR`` on a free port; yield its base URL."""
    port = free_port()
    command = [*cli, "serve", "--port", str(port), "--workers", "2", "--viewer", str(viewer_dir)]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180  # a loaded machine takes long to start two workers
        while not _answers(f"{base_url}/dicom-web/studies"):
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"dicom-repo serve did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.1)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@contextmanager
def serve_in_thread(app: Starlette) -> Iterator[str]:
    """Run ``app`` with uvicorn on a free loopback port; yield its base URL."""
    config = uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the viewer proxy did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{config.port}"
    finally:
        server.should_exit = True
        thread.join(10)

"""The real DICOMweb server (``dicom-repo serve``) in a subprocess on a free port, for tests.

The server is started exactly as a user starts it (uvicorn, N worker processes), and stopped by
terminating the process group it leads (uvicorn's supervisor and its workers).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pydicom
import requests
from orthanc import free_port

SERVE = "from repository.cli import run; run()"


@dataclass
class WebServer:
    """One running ``dicom-repo serve``."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path
    token: str | None = None

    @property
    def url(self) -> str:
        """The server's root URL."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def dicomweb(self) -> str:
        """The DICOMweb root."""
        return f"{self.url}/dicom-web"

    def headers(self) -> dict[str, str]:
        """The Authorization header the server wants (empty without a token)."""
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def stop(self) -> None:
        """Stop the server and its workers."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)


def start(
    db_url: str,
    workdir: Path,
    *,
    workers: int = 2,
    args: Sequence[str] = (),
    token: str | None = None,
    timeout: float = 60.0,
) -> WebServer:
    """Start ``dicom-repo --db URL serve --port P --workers N ARGS`` and wait until it answers."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = workdir / f"serve-{port}.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DICOM_REPO_")}
    if token:
        env["DICOM_REPO_TOKEN"] = token
    command = [sys.executable, "-c", SERVE, "--db", db_url, "serve", "--port", str(port),
               "--workers", str(workers), *args]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env, cwd=workdir, start_new_session=True,
        )  # fmt: skip
    server = WebServer(process, port, log, token)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            answer = requests.get(f"{server.dicomweb}/studies?limit=1", headers=server.headers(),
                                  timeout=5)  # fmt: skip
            if answer.status_code in (200, 204):
                return server
        except requests.RequestException:
            pass
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"dicom-repo serve did not start; its log:\n{log.read_text()[-3000:]}")


def read(path: Path, pixels: bool = False) -> pydicom.Dataset:
    """A file as pydicom reads it (warnings about test files' flaws silenced)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(path, stop_before_pixels=not pixels, force=True)

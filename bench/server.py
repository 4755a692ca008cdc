"""A ``dicom-repo serve`` process for the server benches, and fetching from it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import requests
import sqlalchemy as sa

from repository.engine import make_engine

NO_GZIP = {"Accept-Encoding": "identity"}


@contextmanager
def serving(url: str, workers: int = 1) -> Iterator[str]:
    """``dicom-repo serve`` on a free port; yields its DICOMweb root."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [sys.executable, "-c", "from repository.cli import run; run()", "--db", url,
               "serve", "--port", str(port), "--workers", str(workers)]  # fmt: skip
    process = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL)
    root = f"http://127.0.0.1:{port}/dicom-web"
    try:
        for _ in range(600):
            try:
                if requests.get(f"{root}/studies?limit=1", timeout=5).ok:
                    break
            except requests.RequestException:
                time.sleep(0.1)
        yield root
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)


def get_whole(session: requests.Session, url: str) -> int:
    """GET ``url`` whole (read in 1 MiB chunks: the client's own overhead stays small)."""
    with session.get(url, headers=NO_GZIP, stream=True) as answer:
        answer.raise_for_status()
        return sum(len(chunk) for chunk in answer.iter_content(1 << 20))


def wait_kept(scoped: str, series: str, count: int, timeout: float = 120.0) -> None:
    """Wait until the server kept the JSON of ``count`` instances of ``series``."""
    engine = make_engine(scoped)
    sql = sa.text(
        "SELECT count(*) FROM instance_dicom_json c JOIN instance i ON i.id = c.instance_id "
        "JOIN series s ON s.id = i.series_id WHERE s.series_instance_uid = :uid "
        "AND c.json IS NOT NULL"
    )
    deadline = time.perf_counter() + timeout
    try:
        while time.perf_counter() < deadline:
            with engine.connect() as conn:
                if conn.execute(sql, {"uid": series}).scalar_one() >= count:
                    return
            time.sleep(0.05)
        raise TimeoutError(f"the server kept no JSON for series {series} in {timeout} s")
    finally:
        engine.dispose()

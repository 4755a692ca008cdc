"""``dicom-repo serve`` under load (``python -m bench serve-load``), one worker, load from ``wrk``.

For QIDO-RS (OHIF's study search), WADO-RS series metadata (kept JSON) and one frame, at 16 and
64 connections: requests/s and p99 latency, the answers that were not 2xx, socket errors, and the
worker's RSS before and after. The baseline is the same request from one connection, one at a
time (ratio: how much of that rate the worker keeps under load; under 1 means it collapses).
The data: one CT series of ``instances`` Part-10 files (real pixel data) ingested from files.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import requests

import repository
from repository.ingest import ingest

from .common import create, drop, emit
from .serve import _series_files
from .server import NO_GZIP, serving, wait_kept

FRAMES_ACCEPT = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'
QIDO = "studies?limit=101&offset=0&fuzzymatching=false&includefield=00081030%2C00080060"
_RATE = re.compile(r"Requests/sec:\s+([\d.]+)")
_P99 = re.compile(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)
_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_SOCKET = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
_SECONDS = {"us": 1e-6, "ms": 1e-3, "s": 1.0}


@dataclass
class Load:
    """What one ``wrk`` run measured."""

    rate: float
    p99: float
    non_2xx: int
    socket_errors: int


def wrk(url: str, seconds: int, connections: int, accept: str) -> Load:
    """Run ``wrk --latency`` on ``url`` (keep-alive connections, 2 threads)."""
    threads = str(min(2, connections))
    command = ["wrk", "-t", threads, "-c", str(connections), "-d", f"{seconds}s", "--latency",
               "--timeout", "30s", "-H", f"Accept: {accept}", "-H", "Accept-Encoding: identity",
               url]  # fmt: skip
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    rate, p99 = _RATE.search(out), _P99.search(out)
    if not rate or not p99:
        raise RuntimeError(f"cannot read wrk's output on {url}:\n{out}")
    non_2xx, errors = _NON_2XX.search(out), _SOCKET.search(out)
    return Load(float(rate.group(1)), float(p99.group(1)) * _SECONDS[p99.group(2)],
                int(non_2xx.group(1)) if non_2xx else 0,
                sum(map(int, errors.groups())) if errors else 0)  # fmt: skip


def rss_mb(pid: str) -> float:
    """The resident memory of process ``pid``, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError(f"no VmRSS for process {pid}")


def _targets(root: str, study: str, series: str) -> dict[str, tuple[str, str]]:
    frame = f"{root}/studies/{study}/series/{series}/instances/{series}.1/frames/1"
    return {
        "qido": (f"{root}/{QIDO}", "application/dicom+json"),
        "metadata": (f"{root}/studies/{study}/series/{series}/metadata", "application/dicom+json"),
        "frames": (frame, FRAMES_ACCEPT),
    }


def run(url: str, instances: int, seconds: int, connections: tuple[int, ...]) -> None:
    """Every endpoint at every connection count, on one worker."""
    if shutil.which("wrk") is None:
        print("serve-load skipped: wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return
    name = f"bench_serve_load_{os.getpid()}"
    with tempfile.TemporaryDirectory() as folder:
        study, series, paths = _series_files(Path(folder), instances)
        scoped = create(url, name)
        try:
            with repository.connect(scoped) as store:
                ingest(store, paths, workers=2)
            _measure(url, scoped, study, series, seconds, connections)
        finally:
            drop(url, name)


def _measure(url: str, scoped: str, study: str, series: str, seconds: int,
             connections: tuple[int, ...]) -> None:  # fmt: skip
    with serving(scoped, workers=1) as root:
        targets = _targets(root, study, series)
        first = requests.get(targets["metadata"][0], headers=NO_GZIP, timeout=120)
        wait_kept(scoped, series, len(first.json()))
        worker = first.headers["X-Dicom-Repo-Worker"]
        for endpoint, (target, accept) in targets.items():
            alone = wrk(target, max(2, seconds // 2), 1, accept)
            for count in connections:
                before = rss_mb(worker)
                load = wrk(target, seconds, count, accept)
                emit(f"serve-load-{endpoint}", url, load.rate, "req/s", alone.rate,
                     load.rate / alone.rate, connections=count, p99_s=round(load.p99, 4),
                     p99_alone_s=round(alone.p99, 4), non_2xx=load.non_2xx,
                     socket_errors=load.socket_errors, rss_before_mb=before,
                     rss_after_mb=rss_mb(worker), workers=1, client="wrk",
                     load=round(os.getloadavg()[0], 2), cpus=os.cpu_count(),
                     target="non_2xx == 0 and ratio >= 0.8")  # fmt: skip

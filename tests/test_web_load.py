"""``dicom-repo serve`` under load: 128 concurrent WADO-RS metadata requests on one worker with
4 database slots, all answered whole, none a 5xx, and the worker's memory bounded.

(Before the slots, the streamed answers held every pooled connection while the requests waiting
for one held every thread: the worker stalled, then answered 500 to all.)
"""

from __future__ import annotations

import copy
import io
import os
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pydicom
import pytest
import requests
from orthanc import UploadedFile
from pydicom.uid import generate_uid
from web_server import WebServer, read, start

import repository
from repository.ingest import ingest

pytest_plugins = ("web_fixtures",)
INSTANCES = 50
CLIENTS = 128
RSS_SHARE = 0.5
"""What the answers may add to the worker's memory, at most, as a share of their total size: they
are streamed a few at a time, never all held at once (measured: about a sixth)."""


def _big_study(ct: Path) -> list[pydicom.Dataset]:
    """One series of :data:`INSTANCES` copies of CT_small (metadata only, no files)."""
    template = read(ct)
    study, series = generate_uid(), generate_uid()
    copies = []
    for number in range(1, INSTANCES + 1):
        ds = copy.deepcopy(template)
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.SOPInstanceUID = generate_uid()
        ds.InstanceNumber = number
        copies.append(ds)
    return copies


@pytest.fixture(scope="module")
def loaded(
    web_db: str, web_files: list[UploadedFile], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[WebServer, str]]:
    """One worker with 4 database slots, and the UID of a study of :data:`INSTANCES`."""
    ct = next(f for f in web_files if f.path.name == "CT_small.dcm")
    copies = _big_study(ct.path)
    with repository.connect(web_db) as store:
        store.add_instances(copies)
    workdir = tmp_path_factory.mktemp("loaded")
    running = start(web_db, workdir, workers=1, args=["--db-slots", "4"])
    yield running, str(copies[0].StudyInstanceUID)
    running.stop()


def _rss_mb(pid: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for process {pid}")


def test_128_concurrent_metadata_requests_on_one_worker(loaded: tuple[WebServer, str]) -> None:
    server, study = loaded
    url = f"{server.dicomweb}/studies/{study}/metadata"
    warm = requests.get(url, timeout=60)  # builds and keeps the JSON
    assert warm.status_code == 200 and len(warm.json()) == INSTANCES
    worker = warm.headers["X-Dicom-Repo-Worker"]
    before = _rss_mb(worker)

    def fetch(_: int) -> tuple[int, int]:
        with requests.Session() as session:
            answer = session.get(url, timeout=120)
            size = len(answer.json()) if answer.status_code == 200 else -1
            return answer.status_code, size

    with ThreadPoolExecutor(CLIENTS) as pool:
        results = list(pool.map(fetch, range(CLIENTS)))
    after = _rss_mb(worker)
    statuses = sorted({status for status, _ in results})
    assert statuses == [200], f"statuses {statuses}; log:\n{server.log.read_text()[-2000:]}"
    assert all(size == INSTANCES for _, size in results)
    bound = RSS_SHARE * CLIENTS * len(warm.content) / 2**20
    assert after - before < bound, f"worker RSS {before:.0f} MB -> {after:.0f} MB (+{bound:.0f})"
    assert requests.get(f"{server.url}/healthz", timeout=30).status_code == 200


def _peak_rss_mb(pid: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmHWM for process {pid}")


def test_whole_instances_are_streamed_not_held(
    loaded: tuple[WebServer, str], web_db: str, web_files: list[UploadedFile], tmp_path: Path
) -> None:
    server, _ = loaded
    ct = next(f for f in web_files if f.path.name == "CT_small.dcm")
    ds = _big_study(ct.path)[0]
    ds.file_meta = read(ct.path).file_meta
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.Rows = ds.Columns = 4096
    ds.add_new(0x7FE00010, "OW", bytes(4096 * 4096 * 2))  # PixelData, 32 MB
    path = tmp_path / "big.dcm"
    ds.save_as(path, enforce_file_format=True)
    with repository.connect(web_db) as store:
        assert ingest(store, [path], workers=1).ingested == 1
    url = (f"{server.dicomweb}/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
           f"/instances/{ds.SOPInstanceUID}")  # fmt: skip
    worker = requests.get(f"{server.url}/healthz", timeout=30).headers["X-Dicom-Repo-Worker"]
    before = _peak_rss_mb(worker)

    def fetch(_: int) -> int:
        accept = 'multipart/related; type="application/dicom"'
        answer = requests.get(url, headers={"Accept": accept}, timeout=120)
        assert answer.status_code == 200
        return len(answer.content)

    with ThreadPoolExecutor(4) as pool:
        sizes = list(pool.map(fetch, range(4)))
    assert all(size > path.stat().st_size for size in sizes)
    grown = _peak_rss_mb(worker) - before
    assert grown < 32, f"the worker's peak RSS grew by {grown:.0f} MB for 4 x 32 MB answers"


def test_sigterm_lets_a_stow_in_progress_finish(
    web_db: str, web_files: list[UploadedFile], tmp_path_factory: pytest.TempPathFactory
) -> None:
    ct = next(f for f in web_files if f.path.name == "CT_small.dcm")
    ds = _big_study(ct.path)[0]
    ds.file_meta = read(ct.path).file_meta
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    body = b"--b\r\nContent-Type: application/dicom\r\n\r\n" + buffer.getvalue() + b"\r\n--b--\r\n"
    workdir = tmp_path_factory.mktemp("sigterm")
    server = start(web_db, workdir, workers=1, args=["--storage", str(workdir / "storage")])
    signalled = threading.Event()

    def upload() -> Iterator[bytes]:
        yield body[: len(body) // 2]
        signalled.wait(30)
        time.sleep(0.5)  # the server is shutting down now
        yield body[len(body) // 2 :]

    content_type = 'multipart/related; type="application/dicom"; boundary=b'
    with ThreadPoolExecutor(1) as pool:
        posted = pool.submit(requests.post, f"{server.dicomweb}/studies", data=upload(),
                             headers={"Content-Type": content_type}, timeout=60)  # fmt: skip
        time.sleep(1.0)  # the first half is in
        os.killpg(server.process.pid, signal.SIGTERM)
        signalled.set()
        answer = posted.result()
    assert answer.status_code == 200, answer.text[:300]
    assert server.process.wait(30) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal
    with repository.connect(web_db) as store:
        assert store.get_instance(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
    assert list((workdir / "storage").rglob(f"{ds.SOPInstanceUID}-*.dcm"))


def test_requests_past_the_queue_timeout_are_503_with_retry_after(
    loaded: tuple[WebServer, str], web_db: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    _, study = loaded
    workdir = tmp_path_factory.mktemp("busy")
    server = start(web_db, workdir, workers=1, args=["--db-slots", "1", "--queue-timeout", "0.1"])
    try:
        url = f"{server.dicomweb}/studies/{study}/metadata"

        def fetch(_: int) -> requests.Response:
            return requests.get(url, timeout=120)

        with ThreadPoolExecutor(32) as pool:
            answers = list(pool.map(fetch, range(32)))
        busy = [a for a in answers if a.status_code == 503]
        assert {a.status_code for a in answers} <= {200, 503}
        assert busy and all(int(a.headers["Retry-After"]) > 0 for a in busy)
        assert all("server busy" in a.json()["error"] for a in busy)
        metrics = requests.get(f"{server.url}/metrics", timeout=30).text
        refused = [line for line in metrics.splitlines()
                   if line.startswith("dicom_repo_db_slots_refused_total ")]  # fmt: skip
        assert refused and float(refused[0].split()[1]) == len(busy)
        assert "Traceback" not in server.log.read_text()
    finally:
        server.stop()

"""``dicom-repo serve`` while its PostgreSQL server is away: 503 with Retry-After (the connection
kept), one log line when the outage starts and one when it ends, no traceback; a STOW-RS during
the outage leaves no file, and the same instance sent again, corrected, is stored as corrected.

The PostgreSQL server stopped and started here is a scratch cluster of this module's own.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
import requests
from orthanc import UploadedFile
from pydicom.uid import generate_uid
from scratch_postgres import ScratchCluster
from web_server import WebServer, read, start

import repository
from repository import migrate
from repository.engine import make_engine
from repository.ingest import ingest

pytestmark = pytest.mark.postgresql
pytest_plugins = ("web_fixtures",)


@pytest.fixture(scope="module")
def cluster() -> Iterator[ScratchCluster]:
    """A running scratch PostgreSQL cluster, removed afterwards."""
    scratch = ScratchCluster()
    try:
        scratch.start()
        yield scratch
    finally:
        scratch.remove()


@pytest.fixture(scope="module")
def ct(web_files: list[UploadedFile]) -> UploadedFile:
    """CT_small.dcm, the instance every request here is about."""
    return next(f for f in web_files if f.path.name == "CT_small.dcm")


@pytest.fixture(scope="module")
def served(
    cluster: ScratchCluster, ct: UploadedFile, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WebServer]:
    """One worker on the scratch cluster, holding CT_small, with STOW-RS."""
    engine = make_engine(cluster.url)
    migrate.upgrade(engine)
    engine.dispose()
    with repository.connect(cluster.url) as store:
        ingest(store, [ct.path], workers=1)
    workdir = tmp_path_factory.mktemp("outage")
    args = ["--storage", str(workdir / "storage"), "--queue-timeout", "5"]
    running = start(cluster.url, workdir, workers=1, args=args)
    yield running
    running.stop()


def _stow(server: WebServer, ds: pydicom.Dataset) -> requests.Response:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    body = (b"--b\r\nContent-Type: application/dicom\r\n\r\n" + buffer.getvalue()
            + b"\r\n--b--\r\n")  # fmt: skip
    content_type = 'multipart/related; type="application/dicom"; boundary=b'
    return requests.post(f"{server.dicomweb}/studies", data=body, timeout=120,
                         headers={"Content-Type": content_type})  # fmt: skip


def _urls(server: WebServer, ct: UploadedFile) -> list[str]:
    instance = f"{server.dicomweb}/studies/{ct.study}/series/{ct.series}/instances/{ct.sop}"
    return [f"{server.dicomweb}/studies", f"{server.dicomweb}/studies/{ct.study}/metadata",
            f"{instance}/frames/1", f"{server.url}/changes?since=0"]  # fmt: skip


def _during_outage(server: WebServer, ct: UploadedFile, session: requests.Session) -> None:
    for _ in range(5):
        for url in _urls(server, ct):
            answer = session.get(url, timeout=60)
            assert answer.status_code == 503, (url, answer.status_code, answer.text[:300])
            assert int(answer.headers["Retry-After"]) > 0
            assert "unavailable" in answer.json()["error"]
            assert answer.headers.get("Connection", "").lower() != "close"
    ready = session.get(f"{server.url}/readyz", timeout=60)
    assert ready.status_code == 503 and ready.json()["database"] == "unreachable"
    assert session.get(f"{server.url}/healthz", timeout=60).status_code == 200


def _wait_until_served(server: WebServer, session: requests.Session) -> None:
    deadline = time.monotonic() + 60
    while session.get(f"{server.dicomweb}/studies", timeout=60).status_code != 200:
        assert time.monotonic() < deadline, "the server did not recover"
        time.sleep(0.2)


def test_an_outage_is_503_logged_once_and_a_stow_retried_after_it_is_stored_corrected(
    cluster: ScratchCluster, served: WebServer, ct: UploadedFile
) -> None:
    session = requests.Session()
    assert session.get(f"{served.dicomweb}/studies", timeout=60).status_code == 200
    ds = read(ct.path, pixels=True)
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.PatientName = "Wrong^Name"
    storage = Path(served.log).parent / "storage"

    cluster.stop()
    try:
        _during_outage(served, ct, session)
        failed = _stow(served, ds)
        assert failed.status_code == 503, failed.text[:300]
        assert not [p for p in storage.rglob("*") if p.is_file()], "the failed STOW left a file"
    finally:
        cluster.start()

    _wait_until_served(served, session)
    ds.PatientName = "Right^Name"
    stored = _stow(served, ds)
    assert stored.status_code == 200, stored.text[:300]
    found = session.get(f"{served.dicomweb}/studies?StudyInstanceUID={ds.StudyInstanceUID}",
                        timeout=60).json()  # fmt: skip
    assert found[0]["00100010"]["Value"] == [{"Alphabetic": "Right^Name"}]
    (path,) = storage.rglob(f"{ds.SOPInstanceUID}-*.dcm")
    assert str(read(path).PatientName) == "Right^Name"
    assert session.get(f"{served.url}/readyz", timeout=60).status_code == 200

    log = served.log.read_text()
    assert "Traceback" not in log
    assert log.count("database unavailable") == 1, log[-3000:]
    assert log.count("database available again") == 1, log[-3000:]
    assert len(log.splitlines()) <= 8, log[-3000:]

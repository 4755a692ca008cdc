"""The whole-request timeout of ``dicom-repo serve`` (``--request-timeout``), on both databases,
each slow request made slow on purpose: a write waiting for a lock the test holds, a client that
does not read its answer, an upload that trickles. Each is answered 503 (or its answer cut off)
when its time is up, its database work cancelled (a write never commits afterwards), its slot
given back; one log line, no traceback.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pydicom
import pytest
import requests
from orthanc import UploadedFile
from pydicom.uid import generate_uid
from sqlalchemy import Connection
from web_server import WebServer, read, start

import repository
from repository.engine import make_engine
from repository.ingest import ingest

pytest_plugins = ("web_fixtures",)
TIMEOUT = 2.0
BIG_SIDE = 4096
"""Rows and columns of the big instance: 32 MB of 16-bit pixels, far more than the socket
buffers between the server and a client that does not read can hold."""


@pytest.fixture(scope="module")
def timed(web_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    """One worker with a 2 s request timeout and STOW-RS."""
    workdir = tmp_path_factory.mktemp("timed")
    running = start(web_db, workdir, workers=1, args=[
        "--request-timeout", str(TIMEOUT), "--storage", str(workdir / "storage"),
    ])  # fmt: skip
    yield running
    running.stop()


def _copy(ct: UploadedFile, **changes: object) -> pydicom.Dataset:
    """CT_small under new UIDs (a study of its own), with ``changes``."""
    ds = read(ct.path, pixels=True)
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    for keyword, value in changes.items():
        setattr(ds, keyword, value)
    return ds


@contextmanager
def _writers_held(url: str) -> Iterator[Connection]:
    """Hold the database's write lock (SQLite: a write transaction; PostgreSQL: the instance
    table locked against writes) until the block ends; the holding connection."""
    engine = make_engine(url)
    try:
        with engine.connect().execution_options(dicom_repo_write=True) as conn, conn.begin():
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql("LOCK TABLE instance IN EXCLUSIVE MODE")
            yield conn
    finally:
        engine.dispose()


def _waiting_on(conn: Connection, table: str) -> int:
    """PostgreSQL: how many lock requests on ``table`` (this schema's) are waiting."""
    sql = f"SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = '{table}'::regclass"
    return int(conn.exec_driver_sql(sql).scalar_one())


def _until(check: object, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"still not {check}"
        time.sleep(0.1)


def _slots_free(server: WebServer) -> bool:
    text = requests.get(f"{server.url}/metrics", timeout=30).text
    line = next(x for x in text.splitlines() if x.startswith("dicom_repo_db_slots_in_use "))
    return float(line.split()[1]) == 0


def _timed_out(answer: requests.Response, started: float) -> None:
    took = time.monotonic() - started
    assert answer.status_code == 503, answer.text[:300]
    assert "--request-timeout" in answer.json()["error"]
    assert int(answer.headers["Retry-After"]) > 0
    assert TIMEOUT <= took < TIMEOUT + 8, took


def _log_is_clean(server: WebServer, timeouts: int) -> None:
    log = server.log.read_text()
    assert log.count("request timed out") == timeouts, log[-3000:]
    assert "Traceback" not in log and "database unavailable" not in log, log[-3000:]


def test_a_write_past_the_timeout_is_503_and_never_commits(
    timed: WebServer, web_db: str, web_files: list[UploadedFile]
) -> None:
    ct = next(f for f in web_files if f.path.name == "CT_small.dcm")
    ds = _copy(ct)
    with repository.connect(web_db) as store:
        store.add_instances([ds])
    study = f"{timed.dicomweb}/studies/{ds.StudyInstanceUID}"
    with _writers_held(web_db) as held:
        started = time.monotonic()
        _timed_out(requests.delete(study, timeout=60), started)
        if held.dialect.name == "postgresql":  # its statement was cancelled, lock still held
            _until(lambda: _waiting_on(held, "instance") == 0, 10)
    _until(lambda: _slots_free(timed))  # SQLite: the DELETE ran on once the lock was free
    with repository.connect(web_db) as store:
        assert store.get_instance(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
    assert requests.delete(study, timeout=60).status_code == 204  # in time, it deletes
    _log_is_clean(timed, 1)


def test_an_answer_the_client_does_not_read_is_cut_off_and_its_slot_freed(
    timed: WebServer, web_db: str, web_files: list[UploadedFile], tmp_path: Path
) -> None:
    ct = next(f for f in web_files if f.path.name == "CT_small.dcm")
    ds = _copy(ct, Rows=BIG_SIDE, Columns=BIG_SIDE, PixelData=bytes(BIG_SIDE * BIG_SIDE * 2))
    path = tmp_path / "big.dcm"
    ds.save_as(path, enforce_file_format=True)
    with repository.connect(web_db) as store:
        assert ingest(store, [path], workers=1).ingested == 1
    target = (f"/dicom-web/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
              f"/instances/{ds.SOPInstanceUID}")  # fmt: skip
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(60)
        sock.connect(("127.0.0.1", timed.port))
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nAccept: application/dicom\r\n\r\n"
                     .encode())  # fmt: skip
        time.sleep(TIMEOUT + 1)  # reading nothing
        _until(lambda: _slots_free(timed), 10)
        received = b""
        while chunk := sock.recv(1 << 20):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head[:200]
    size = path.stat().st_size
    assert f"content-length: {size}".encode() in head.lower()
    assert 0 < len(body) < size / 2  # the connection was closed part way
    log = timed.log.read_text()
    assert "answer cut off" in log and "Traceback" not in log, log[-3000:]


def test_an_upload_that_trickles_is_503_at_the_timeout_and_leaves_no_file(
    timed: WebServer,
) -> None:
    head = (
        "POST /dicom-web/studies HTTP/1.1\r\nHost: x\r\n"
        'Content-Type: multipart/related; type="application/dicom"; boundary=b\r\n'
        f"Content-Length: {10**6}\r\n\r\n--b\r\nContent-Type: application/dicom\r\n\r\n"
    )
    incoming = timed.log.parent / "storage" / ".incoming"
    with socket.create_connection(("127.0.0.1", timed.port), timeout=60) as sock:
        sock.sendall(head.encode())
        started = time.monotonic()
        sock.setblocking(False)
        answer = b""
        while b"\r\n\r\n" not in answer and time.monotonic() - started < TIMEOUT + 8:
            with suppress(OSError):  # BlockingIOError: nothing yet; the server closed
                sock.send(b"D")  # a byte every 0.2 s: the body timeout (60 s) never fires
            time.sleep(0.2)
            with suppress(BlockingIOError):
                answer += sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 503"), answer[:300]
    assert time.monotonic() - started >= TIMEOUT
    _until(lambda: not list(incoming.glob("*.part")), 10)


@pytest.mark.postgresql
def test_a_read_past_the_timeout_is_cancelled_and_head_runs_no_query(
    timed: WebServer, web_db: str
) -> None:
    if not web_db.startswith("postgresql"):
        pytest.skip("only PostgreSQL lets a test hold up a read (SQLite readers never wait)")
    engine = make_engine(web_db)
    try:
        with engine.connect() as held, held.begin():
            held.exec_driver_sql("LOCK TABLE study IN ACCESS EXCLUSIVE MODE")
            head = requests.head(f"{timed.dicomweb}/studies", timeout=60)
            assert head.status_code == 200 and not head.content  # answered without the query
            started = time.monotonic()
            _timed_out(requests.get(f"{timed.dicomweb}/studies", timeout=60), started)
            _until(lambda: _waiting_on(held, "study") == 0, 10)
    finally:
        engine.dispose()
    assert requests.get(f"{timed.dicomweb}/studies", timeout=60).status_code == 200
    assert "Traceback" not in timed.log.read_text()

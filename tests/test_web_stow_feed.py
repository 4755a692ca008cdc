"""STOW-RS, the change feed over HTTP and the security rules of ``dicom-repo serve``."""

from __future__ import annotations

import io
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pydicom
import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from orthanc import UploadedFile
from pydicom.uid import generate_uid
from web_server import WebServer, read, start

pytest_plugins = ("web_fixtures",)
TOKEN = "s3cret-token-for-tests"


def new_instance(web_files: list[UploadedFile], study: str | None = None) -> pydicom.Dataset:
    """CT_small.dcm under new UIDs (a new study unless one is given)."""
    ct = next(f for f in web_files if f.path.name == "CT_small.dcm")
    ds = read(ct.path, pixels=True)
    ds.StudyInstanceUID = study or generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    return ds


def _bytes(ds: pydicom.Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _multipart(parts: list[tuple[str, bytes]]) -> tuple[bytes, str]:
    boundary = "b0undary-for-tests"
    body = b"".join(
        f"--{boundary}\r\nContent-Type: {kind}\r\n\r\n".encode() + data + b"\r\n"
        for kind, data in parts
    )
    return body + f"--{boundary}--\r\n".encode(), (
        f'multipart/related; type="application/dicom"; boundary={boundary}'
    )


def _last_seq(server: WebServer) -> int:
    changes = requests.get(f"{server.url}/changes?since=0&limit=10000", timeout=30).json()
    return int(changes[-1]["seq"]) if changes else 0


def test_stow_on_one_worker_is_seen_at_once_by_every_worker(
    server: WebServer, client: DICOMwebClient, web_files: list[UploadedFile]
) -> None:
    ds = new_instance(web_files)
    since = _last_seq(server)
    answer = client.store_instances([ds])
    (stored,) = answer.ReferencedSOPSequence
    assert stored.ReferencedSOPInstanceUID == ds.SOPInstanceUID
    assert "FailedSOPSequence" not in answer
    workers: set[str] = set()
    for _ in range(200):  # new connection each time: the kernel spreads them over workers
        found = requests.get(f"{server.dicomweb}/studies?StudyInstanceUID={ds.StudyInstanceUID}",
                             timeout=30)  # fmt: skip
        assert [r["0020000D"]["Value"][0] for r in found.json()] == [ds.StudyInstanceUID]
        workers.add(found.headers["X-Dicom-Repo-Worker"])
        if len(workers) == 2:
            break
    assert len(workers) == 2, "every answer came from one worker"
    url = (f"{server.dicomweb}/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
           f"/instances/{ds.SOPInstanceUID}")  # fmt: skip
    again = requests.get(url, headers={"Accept": "application/dicom"}, timeout=30)
    assert pydicom.dcmread(io.BytesIO(again.content)).PixelData == ds.PixelData
    changes = requests.get(f"{server.url}/changes?since={since}", timeout=30).json()
    mine = [c["kind"] for c in changes if c["study_instance_uid"] == ds.StudyInstanceUID]
    assert mine == ["STUDY_ADDED", "INSTANCES_ADDED"]


def test_stow_refuses_what_does_not_belong_and_stores_the_rest(
    server: WebServer, web_files: list[UploadedFile]
) -> None:
    study = generate_uid()
    good, stranger = new_instance(web_files, study), new_instance(web_files)
    body, content_type = _multipart([
        ("application/dicom", _bytes(good)), ("application/dicom", _bytes(stranger)),
        ("application/dicom", b"not a DICOM file at all"),
    ])  # fmt: skip
    answer = requests.post(f"{server.dicomweb}/studies/{study}", data=body,
                           headers={"Content-Type": content_type}, timeout=60)  # fmt: skip
    assert answer.status_code == 202, answer.text
    result = answer.json()
    (stored,) = result["00081199"]["Value"]
    assert stored["00081155"]["Value"] == [good.SOPInstanceUID]
    reasons = [item["00081197"]["Value"][0] for item in result["00081198"]["Value"]]
    assert reasons == [0xA900, 0xC000]
    qido = requests.get(f"{server.dicomweb}/studies?StudyInstanceUID={stranger.StudyInstanceUID}",
                        timeout=30)  # fmt: skip
    assert qido.json() == []
    junk, _ = _multipart([("application/dicom", b"junk")])
    none = requests.post(f"{server.dicomweb}/studies", data=junk,
                         headers={"Content-Type": content_type}, timeout=30)  # fmt: skip
    assert none.status_code == 409


def test_changes_stream_pushes_commits_and_resumes_from_last_event_id(
    server: WebServer, client: DICOMwebClient, web_files: list[UploadedFile]
) -> None:
    since = _last_seq(server)
    stream = requests.get(f"{server.url}/changes/stream?since={since}", stream=True, timeout=30)
    lines = stream.iter_lines(decode_unicode=True)
    assert next(lines).startswith(":")  # subscribed: now commit something
    ds = new_instance(web_files)
    client.store_instances([ds])
    events = _read_events(lines, ds.StudyInstanceUID)
    stream.close()
    assert events[0]["seq"] > since
    first = events[0]["seq"]
    resumed = requests.get(f"{server.url}/changes/stream", stream=True, timeout=30,
                           headers={"Last-Event-ID": str(first - 1)})  # fmt: skip
    replay = _read_events(resumed.iter_lines(decode_unicode=True), ds.StudyInstanceUID)
    resumed.close()
    assert replay[0]["seq"] == first


def _read_events(lines: Iterator[str], study: str) -> list[dict[str, object]]:
    """SSE events up to (and including) the first one about ``study``, with their ids."""
    events: list[dict[str, object]] = []
    event_id = None
    for line in lines:
        if line.startswith("id: "):
            event_id = int(line[4:])
        elif line.startswith("data: "):
            data = orjson.loads(line[6:])
            assert data["seq"] == event_id
            events.append(data)
            if data["study_instance_uid"] == study:
                return [e for e in events if e["study_instance_uid"] == study]
    raise AssertionError("the stream ended without the expected event")


@pytest.fixture(scope="module")
def guarded(web_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    """A read-only server with a token, CORS for one origin and a 64 KiB body limit."""
    workdir = tmp_path_factory.mktemp("guarded")
    token_file = workdir / "token"
    token_file.write_text(TOKEN + "\n")
    running = start(web_db, workdir, workers=1, token=TOKEN, args=[
        "--read-only", "--token-file", str(token_file), "--cors-origin", "http://viewer.test",
        "--max-body", str(64 * 1024), "--storage", str(workdir / "storage"),
    ])  # fmt: skip
    yield running
    running.stop()


def test_token_read_only_cors_and_body_limit(
    guarded: WebServer, server: WebServer, web_files: list[UploadedFile]
) -> None:
    studies = f"{guarded.dicomweb}/studies"
    assert requests.get(studies, timeout=30).status_code == 401
    wrong = {"Authorization": "Bearer wrong"}
    assert requests.get(studies, headers=wrong, timeout=30).status_code == 401
    assert requests.get(f"{guarded.url}/changes", timeout=30).status_code == 401
    auth = guarded.headers()
    assert requests.get(studies, headers=auth, timeout=30).status_code == 200
    small, content_type = _multipart([("application/dicom", b"x" * 100)])
    refused = requests.post(studies, data=small, timeout=30,
                            headers={**auth, "Content-Type": content_type})  # fmt: skip
    assert refused.status_code == 403 and "read-only" in refused.json()["error"]
    large = requests.post(studies, data=b"x" * 100_000, timeout=30,
                          headers={**auth, "Content-Type": content_type})  # fmt: skip
    assert large.status_code == 413
    origin = {"Origin": "http://viewer.test"}
    allowed = requests.get(studies, headers={**auth, **origin}, timeout=30)
    assert allowed.headers["Access-Control-Allow-Origin"] == "http://viewer.test"
    other = requests.get(studies, headers={**auth, "Origin": "http://evil.test"}, timeout=30)
    assert "Access-Control-Allow-Origin" not in other.headers
    plain = requests.get(f"{server.dicomweb}/studies", headers=origin, timeout=30)
    assert "Access-Control-Allow-Origin" not in plain.headers


def test_instances_without_a_file_say_where_they_live(server: WebServer, web_db: str) -> None:
    import repository

    study, series, sop = generate_uid(), generate_uid(), generate_uid()
    with repository.connect(web_db) as store:
        store.add_instances(
            [{"StudyInstanceUID": study, "SeriesInstanceUID": series, "SOPInstanceUID": sop,
              "SOPClassUID": "1.2.840.10008.5.1.4.1.1.2", "Rows": 2, "Columns": 2}],
            data_source="pacs", wado_root="https://pacs.example/dicom-web",
        )  # fmt: skip
    url = f"{server.dicomweb}/studies/{study}/series/{series}/instances/{sop}"
    answer = requests.get(url + "/frames/1", timeout=30)
    assert answer.status_code == 404
    assert f"https://pacs.example/dicom-web/studies/{study}" in answer.json()["error"]
    metadata = requests.get(url + "/metadata", timeout=30)
    assert metadata.json()[0]["00080018"]["Value"] == [sop]


def test_storage_holds_stowed_files_only_under_their_uids(server: WebServer) -> None:
    storage = Path(server.log).parent / "storage"
    names = [p.relative_to(storage).parts for p in storage.rglob("*.dcm")]
    assert names and all(len(parts) == 3 for parts in names)
    assert not list((storage / ".incoming").glob("*.part"))


def test_sigterm_ends_open_change_streams_at_once_without_a_traceback(
    web_db: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    workdir = tmp_path_factory.mktemp("stopping")
    server = start(web_db, workdir, workers=1, args=["--shutdown-timeout", "30"])
    streams = [requests.get(f"{server.url}/changes/stream", stream=True, timeout=60)
               for _ in range(2)]  # fmt: skip
    lines = [s.iter_lines(decode_unicode=True) for s in streams]
    assert all(next(line).startswith(": dicom-repo change feed") for line in lines)
    started = time.monotonic()
    os.killpg(server.process.pid, signal.SIGTERM)
    for line in lines:
        rest = list(line)  # to the end of the stream
        assert any("server is stopping" in text for text in rest), rest
    assert server.process.wait(30) in (0, -signal.SIGTERM)
    assert time.monotonic() - started < 10  # not the 30 s shutdown timeout
    log = server.log.read_text()
    assert "Traceback" not in log and "Exception in ASGI application" not in log


def test_an_upload_still_arriving_when_the_shutdown_timeout_runs_out_is_one_log_line(
    web_db: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    workdir = tmp_path_factory.mktemp("cancelled")
    args = ["--shutdown-timeout", "1", "--storage", str(workdir / "storage")]
    server = start(web_db, workdir, workers=1, args=args)
    head = (
        "POST /dicom-web/studies HTTP/1.1\r\nHost: x\r\n"
        'Content-Type: multipart/related; type="application/dicom"; boundary=b\r\n'
        "Content-Length: 100000\r\n\r\n--b\r\nContent-Type: application/dicom\r\n\r\nDICM"
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(head.encode())  # and never the rest
        time.sleep(0.5)
        os.killpg(server.process.pid, signal.SIGTERM)
        assert server.process.wait(30) in (0, -signal.SIGTERM)
    log = server.log.read_text()
    assert (
        "request cancelled at shutdown (--shutdown-timeout ran out): POST /dicom-web/studies" in log
    )
    assert "Traceback" not in log
    assert not list((workdir / "storage").rglob("*.part"))

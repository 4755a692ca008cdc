"""The change feed over HTTP after a compaction, on both backends: 410 Gone, never a silent gap.

``/changes?since=N`` and ``/changes/stream`` (``since`` or ``Last-Event-ID``) below the change
log's horizon answer 410 with a JSON error naming the oldest kept seq, on every worker; an open
stream whose subscription falls behind a compaction is ended, and its reconnect answered 410.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator

import orjson
import pydicom
import requests
from dicomweb_client.api import DICOMwebClient
from orthanc import UploadedFile
from pydicom.uid import generate_uid
from web_server import WebServer, read

import repository

pytest_plugins = ("web_fixtures",)


def _new(web_files: list[UploadedFile]) -> pydicom.Dataset:
    ds = read(next(f for f in web_files if f.path.name == "CT_small.dcm").path, pixels=True)
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    return ds


def _newest(server: WebServer) -> int:
    answer = requests.get(f"{server.url}/changes?since=0&limit=10000", timeout=30)
    if answer.status_code == 410:
        return int(answer.json()["newest"])
    changes = answer.json()
    return int(changes[-1]["seq"]) if changes else 0


def _gone_everywhere(server: WebServer, path: str, headers: dict[str, str]) -> dict[str, object]:
    """The 410 answer of GET ``path`` (the same from both workers)."""
    bodies: dict[str, dict[str, object]] = {}
    for _ in range(300):
        answer = requests.get(f"{server.url}{path}", headers=headers, timeout=30)
        assert answer.status_code == 410, answer.text
        assert answer.headers["content-type"] == "application/json"
        bodies[answer.headers["X-Dicom-Repo-Worker"]] = answer.json()
        if len(bodies) == 2:
            first, second = bodies.values()
            assert first == second
            return first
    raise AssertionError("every answer came from one worker")


def _until_closed(lines: Iterator[str], stream: requests.Response) -> list[str]:
    """The stream's remaining lines, until the server closes it (given up after a minute:
    keep-alive comments would hold a stream the server forgot open for ever)."""
    watchdog = threading.Timer(60, stream.close)
    watchdog.start()
    rest: list[str] = []
    try:
        rest.extend(lines)
    except (requests.RequestException, AttributeError, ValueError):
        rest.append("(closed by the test after a minute)")
    finally:
        watchdog.cancel()
        stream.close()
    return rest


def test_positions_below_a_compaction_are_answered_410(
    server: WebServer, client: DICOMwebClient, web_files: list[UploadedFile], web_db: str
) -> None:
    client.store_instances([_new(web_files)])
    client.store_instances([_new(web_files)])
    newest = _newest(server)
    with repository.connect(web_db) as store:
        compaction = store.compact_changes(before_seq=newest - 1)
    horizon = compaction.through_seq
    assert horizon == newest - 2 and compaction.removed > 0
    for path, headers in [(f"/changes?since={horizon - 1}", {}),
                          ("/changes?since=0", {}),
                          ("/changes/stream?since=0", {}),
                          ("/changes/stream", {"Last-Event-ID": str(horizon - 1)})]:  # fmt: skip
        body = _gone_everywhere(server, path, headers)
        assert body["horizon"] == horizon and body["newest"] == newest
        assert body["oldest_kept_seq"] == newest - 1
        assert f"up to seq {horizon} were compacted away" in str(body["error"])
    kept = requests.get(f"{server.url}/changes?since={horizon}", timeout=30)
    assert [c["seq"] for c in kept.json()] == [newest - 1, newest]
    resumed = requests.get(f"{server.url}/changes/stream", stream=True, timeout=30,
                           headers={"Last-Event-ID": str(horizon)})  # fmt: skip
    assert resumed.status_code == 200
    ids = []
    for line in resumed.iter_lines(decode_unicode=True):
        ids += [int(line[4:])] if line.startswith("id: ") else []
        if len(ids) == 2:
            break
    resumed.close()
    assert ids == [newest - 1, newest]


def test_an_open_stream_that_falls_behind_a_compaction_ends_and_its_reconnect_gets_410(
    server: WebServer, web_files: list[UploadedFile], web_db: str
) -> None:
    position = _newest(server)
    stream = requests.get(f"{server.url}/changes/stream", stream=True, timeout=30,
                          headers={"Last-Event-ID": str(position)})  # fmt: skip
    assert stream.status_code == 200
    lines = stream.iter_lines(decode_unicode=True)
    assert next(lines).startswith(":")
    worker = int(stream.headers["X-Dicom-Repo-Worker"])
    ds = _new(web_files)
    os.kill(worker, signal.SIGSTOP)  # the stream's worker lags: it reads nothing meanwhile
    try:
        with repository.connect(web_db) as store:
            store.add_instances([{"StudyInstanceUID": ds.StudyInstanceUID,
                                  "SeriesInstanceUID": ds.SeriesInstanceUID,
                                  "SOPInstanceUID": ds.SOPInstanceUID,
                                  "SOPClassUID": ds.SOPClassUID}])  # fmt: skip
            newest = store.changes(position, 100)[-1].seq
            store.compact_changes(before_seq=newest)
    finally:
        os.kill(worker, signal.SIGCONT)
    rest = _until_closed(lines, stream)
    events = [line for line in rest if line.startswith("event: ")]
    assert events == ["event: gap"], f"the stream handed on changes past a gap: {rest}"
    gap = orjson.loads(next(line for line in rest if line.startswith("data: "))[6:])
    assert gap["horizon"] == newest - 1 and "compacted away" in gap["error"]
    last_id = next(line for line in rest if line.startswith("id: "))[4:]
    assert int(last_id) < gap["horizon"]  # an EventSource reconnects with it: 410
    again = requests.get(f"{server.url}/changes/stream", timeout=30,
                         headers={"Last-Event-ID": last_id})  # fmt: skip
    assert again.status_code == 410
    assert again.json()["horizon"] == newest - 1 and again.json()["oldest_kept_seq"] == newest

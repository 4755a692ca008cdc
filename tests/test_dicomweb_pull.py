"""Pulling from DICOMweb servers: real Orthanc servers, and a scripted one for failures.

The Orthanc servers (see ``orthanc.py``) hold the pydicom test files, uploaded through Orthanc's
REST API; every test then pulls into a fresh SQLite file and a fresh PostgreSQL schema and
checks the result against the files read with pydicom. Failures that Orthanc cannot be made to
produce (500s, malformed JSON, slow answers, incomplete series results) come from a small
scripted HTTP server started in a thread.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pydicom
import pytest
from click.testing import CliRunner, Result
from orthanc import (
    Orthanc,
    OrthancUnavailable,
    UploadedFile,
    consistent_selection,
    find_orthanc,
    free_port,
)
from sqlalchemy import inspect, text

from repository import EVENTS, Event, Store
from repository.cli import main
from repository.engine import make_engine
from repository.image_id import wadors_image_id
from repository.ingest import ingest
from repository.reading import sample_files
from repository.sources import (
    DicomWebSource,
    PullError,
    PullProgress,
    data_source_name,
    dicomweb,
    parse_header,
    redact_url,
)

SR_CLASSES = ("1.2.840.10008.5.1.4.1.1.88.",)  # every Structured Report storage class
PASSWORD = "pa55-w0rd-XYZ"  # never to be seen outside the HTTP requests
FILE_META = ("FileMetaInformation", "Implementation", "MediaStorage", "SourceApplication")


# ---------------------------------------------------------------------------------- servers


@pytest.fixture(scope="session")
def orthanc_install() -> tuple[str, str]:
    """The Orthanc binary and DICOMweb plugin; skipped, loudly, outside CI if unavailable."""
    try:
        return find_orthanc()
    except OrthancUnavailable as error:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but Orthanc is unavailable: {error}")
        pytest.skip(f"Orthanc unavailable: {error}")


@dataclass
class Server:
    """A running Orthanc and the files it holds."""

    orthanc: Orthanc
    files: list[UploadedFile] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.orthanc.dicomweb

    def by_name(self, name: str) -> UploadedFile:
        return next(f for f in self.files if f.path.name == name)

    def largest_study(self) -> list[UploadedFile]:
        """The files of the study with the most series."""
        series: dict[str, set[str]] = {}
        for f in self.files:
            series.setdefault(f.study, set()).add(f.series)
        uid = max(series, key=lambda study: (len(series[study]), study))
        return [f for f in self.files if f.study == uid]

    def study(self, name: str) -> list[UploadedFile]:
        """The uploaded files of the study that file ``name`` belongs to."""
        uid = self.by_name(name).study
        return [f for f in self.files if f.study == uid]


@pytest.fixture(scope="session")
def orthancs() -> Iterator[list[Orthanc]]:
    """The Orthanc servers started by this session, stopped together at its end."""
    started: list[Orthanc] = []
    yield started
    for orthanc in started:
        orthanc.terminate()  # all at once: each takes a few seconds to stop
    for orthanc in started:
        orthanc.stop()


def _serve(
    tmp: pytest.TempPathFactory, install: tuple[str, str], pool: list[Orthanc], name: str,
    files: list[UploadedFile], users: dict[str, str] | None = None,
) -> Server:  # fmt: skip
    orthanc = Orthanc(name, tmp.mktemp(name), *install, users=users or {})
    pool.append(orthanc)
    orthanc.start()
    return Server(orthanc, [f for f in files if orthanc.upload(f.path) is not None])


@pytest.fixture(scope="session")
def selection() -> list[UploadedFile]:
    """The pydicom test files that keep the DICOM model whole (Orthanc needs that)."""
    return consistent_selection(sample_files())


@pytest.fixture(scope="session")
def server_a(
    tmp_path_factory: pytest.TempPathFactory,
    orthanc_install: tuple[str, str],
    orthancs: list[Orthanc],
    selection: list[UploadedFile],
) -> Server:
    """An Orthanc holding every file of the selection it accepts."""
    server = _serve(tmp_path_factory, orthanc_install, orthancs, "a", selection)
    assert len(server.files) >= 30, "too few files accepted"
    assert len({f.study for f in server.files}) >= 5
    assert any((f.frames or 1) > 1 for f in server.files), "no multi-frame instance"
    assert any(f.sop_class.startswith(SR_CLASSES) for f in server.files), "no SR"
    return server


@pytest.fixture(scope="session")
def server_b(
    tmp_path_factory: pytest.TempPathFactory,
    orthanc_install: tuple[str, str],
    orthancs: list[Orthanc],
    selection: list[UploadedFile],
) -> Server:
    """A second Orthanc holding the CT_small and MR_small studies."""
    wanted = {f.study for f in selection if f.path.name in ("CT_small.dcm", "MR_small.dcm")}
    chosen = [f for f in selection if f.study in wanted]
    return _serve(tmp_path_factory, orthanc_install, orthancs, "b", chosen)


@pytest.fixture(scope="session")
def server_auth(
    tmp_path_factory: pytest.TempPathFactory,
    orthanc_install: tuple[str, str],
    orthancs: list[Orthanc],
    selection: list[UploadedFile],
) -> Server:
    """An Orthanc that wants HTTP basic authentication, holding the CT_small study."""
    study = next(f.study for f in selection if f.path.name == "CT_small.dcm")
    chosen = [f for f in selection if f.study == study]
    return _serve(
        tmp_path_factory, orthanc_install, orthancs, "auth", chosen, users={"alice": PASSWORD}
    )


# ---------------------------------------------------------------------------------- helpers


def stored_instances(store: Store, data_source: str) -> dict[str, Any]:
    """SOP Instance UID -> stored Instance, over the series lists named ``data_source``."""
    found: dict[str, Any] = {}
    for uid in store.get_study_instance_uids():
        study = store.get_study(uid)
        assert study is not None
        for series_list in study.series_lists:
            if series_list.data_source != data_source:
                continue
            for series in series_list.series:
                for inst in series.instances:
                    assert inst.sop_instance_uid not in found, "instance stored twice"
                    found[inst.sop_instance_uid] = inst
    return found


def instance_rows(url: str) -> int:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM instance")).scalar_one())
    finally:
        engine.dispose()


def database_text(url: str) -> str:
    """Every row of every table as text, plus the raw bytes of a SQLite file."""
    engine = make_engine(url)
    parts = []
    try:
        with engine.connect() as conn:
            for table in inspect(conn).get_table_names():
                rows = conn.execute(text(f'SELECT * FROM "{table}"')).all()
                parts.append(repr([tuple(row) for row in rows]))
    finally:
        engine.dispose()
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        for file in (path, Path(f"{path}-wal")):
            if file.exists():
                parts.append(file.read_bytes().decode("latin-1"))
    return "\n".join(parts)


def check_against_files(store: Store, name: str, files: list[UploadedFile], root: str) -> None:
    """The store's series lists ``name`` hold exactly ``files``, as pydicom reads them."""
    stored = stored_instances(store, name)
    assert sorted(stored) == sorted(f.sop for f in files)
    for f in files:
        inst = stored[f.sop]
        where = f.path.name
        assert (inst.study_instance_uid, inst.series_instance_uid) == (f.study, f.series), where
        assert inst.sop_class_uid == f.sop_class, where
        assert inst.instance_number == f.instance_number, where
        assert (inst.rows, inst.columns) == (f.rows, f.columns), where
        assert inst.number_of_frames == f.frames, where
        assert inst.metadata.get("Modality") == f.modality, where
        assert inst.metadata["SOPInstanceUID"] == f.sop, where
        assert inst.image_id == wadors_image_id(root, f.study, f.series, f.sop), where
        assert (inst.data_source, inst.wado_root) == (name, root), where


def run(url: str, *args: str) -> Result:
    return CliRunner().invoke(main, ["--db", url, *args], catch_exceptions=False)


# ------------------------------------------------------------------------- pulls from Orthanc


def test_pull_everything_gives_exactly_the_uploaded_instances(
    store: Store, server_a: Server
) -> None:
    seen: list[PullProgress] = []
    report = DicomWebSource(server_a.url).pull(store, progress=seen.append)

    name = data_source_name(server_a.url)
    assert name == f"127.0.0.1:{server_a.orthanc.port}/dicom-web"
    assert report.data_source == name
    assert report.instances_added == len(server_a.files)
    assert report.instances_present == 0 and not report.failures
    assert report.studies == len({f.study for f in server_a.files})
    assert report.series == len({f.series for f in server_a.files})
    check_against_files(store, name, server_a.files, server_a.url)

    # one series list per study, named for the server, with its WADO-RS root
    for uid in store.get_study_instance_uids():
        study = store.get_study(uid)
        assert study is not None
        assert [(sl.data_source, sl.wado_root) for sl in study.series_lists] == [
            (name, server_a.url)
        ]
    # bulk data stays on the server, addressed with its port (see DicomWebSource._client)
    ct = store.get_instance_from_image_id(
        wadors_image_id(server_a.url, *_uids(server_a.by_name("CT_small.dcm")))
    )
    assert ct is not None
    assert ct.metadata["PixelData"] == {
        "BulkDataURI": f"{server_a.url}/studies/{ct.study_instance_uid}/series/"
        f"{ct.series_instance_uid}/instances/{ct.sop_instance_uid}/bulk/7fe00010"
    }
    # progress: grows to the totals, series by series
    last = seen[-1]
    assert (last.studies_done, last.studies_total) == (report.studies, report.studies)
    assert (last.series_done, last.series_total) == (report.series, report.series)
    assert last.instances_added == report.instances_added
    assert [p.series_done for p in seen] == sorted(p.series_done for p in seen)


def _uids(f: UploadedFile) -> tuple[str, str, str]:
    return f.study, f.series, f.sop


def test_pulled_metadata_equals_the_ingested_files(store: Store, server_a: Server) -> None:
    files = server_a.study("CT_small.dcm") + server_a.study("MR_small.dcm")
    source = DicomWebSource(server_a.url, name="pacs")
    source.pull(store, studies=sorted({f.study for f in files}))
    ingest(store, [f.path for f in files], data_source="files", workers=1)

    pulled, ingested = stored_instances(store, "pacs"), stored_instances(store, "files")
    assert pulled.keys() == ingested.keys() == {f.sop for f in files}
    for sop, inst in pulled.items():
        twin = ingested[sop]
        for column in ("sop_class_uid", "instance_number", "number_of_frames", "rows", "columns"):
            assert getattr(inst, column) == getattr(twin, column), column
        # WADO-RS metadata has no file meta group, and large binary values are references
        mine = {k: v for k, v in inst.metadata.items() if not _binary(v)}
        theirs = {
            k: v
            for k, v in twin.metadata.items()
            if not _binary(v) and not k.startswith(FILE_META) and k != "TransferSyntaxUID"
        }
        assert mine == theirs, sop
    for uid in {f.study for f in files}:
        study = store.get_study(uid)
        assert study is not None
        lists = {sl.data_source: sl for sl in study.series_lists}
        assert lists.keys() == {"pacs", "files"}
        for column in ("modality", "series_number", "series_description", "series_date"):
            assert [getattr(s, column) for s in lists["pacs"].series] == [
                getattr(s, column) for s in lists["files"].series
            ]


def _binary(value: Any) -> bool:
    return isinstance(value, dict) and ("BulkDataURI" in value or "InlineBinary" in value)


def test_same_study_from_a_second_server_gets_a_second_series_list(
    store: Store, server_a: Server, server_b: Server
) -> None:
    files = server_b.study("CT_small.dcm")
    study_uid = files[0].study
    a = DicomWebSource(server_a.url).pull(store, studies=[study_uid])
    b = DicomWebSource(server_b.url).pull(store, studies=[study_uid])
    assert a.instances_added == b.instances_added == len(files)
    assert a.data_source != b.data_source

    study = store.get_study(study_uid)
    assert study is not None
    assert sorted((sl.data_source, sl.wado_root) for sl in study.series_lists) == sorted(
        [(a.data_source, server_a.url), (b.data_source, server_b.url)]
    )
    check_against_files(store, a.data_source, files, server_a.url)
    check_against_files(store, b.data_source, files, server_b.url)
    assert store.get_study_instance_uids() == [study_uid]
    for f in files:  # each copy's imageId leads to that copy
        for server, source in ((server_a, a), (server_b, b)):
            found = store.get_instance_from_image_id(wadors_image_id(server.url, *_uids(f)))
            assert found is not None and found.data_source == source.data_source


def test_pull_by_query_takes_only_the_matching_studies(store: Store, server_a: Server) -> None:
    ct = server_a.by_name("CT_small.dcm")
    patient = "1CT1"
    expected = [f for f in server_a.files if _patient_id(f) == patient]
    assert expected and len(expected) < len(server_a.files)
    report = DicomWebSource(server_a.url).pull(store, query={"PatientID": patient})
    assert report.instances_added == len(expected)
    assert ct.study in store.get_study_instance_uids()
    assert set(store.get_study_instance_uids()) == {f.study for f in expected}


def _patient_id(f: UploadedFile) -> str:
    return str(pydicom.dcmread(f.path, specific_tags=["PatientID"]).get("PatientID"))


def test_pulling_again_adds_nothing_and_fires_no_instance_events(
    store: Store, db_url: str, server_a: Server
) -> None:
    files = server_a.study("MR_small.dcm") + server_a.study("rtdose.dcm")
    studies = sorted({f.study for f in files})
    first = DicomWebSource(server_a.url).pull(store, studies=studies)
    events: list[Event] = []
    store.subscribe(EVENTS.INSTANCES_ADDED, events.append)
    store.subscribe(EVENTS.STUDY_ADDED, events.append)
    again = DicomWebSource(server_a.url).pull(store, studies=studies)
    assert first.instances_added == again.instances_present == len(files)
    assert again.instances_added == 0 and again.series == first.series
    assert events == []
    assert instance_rows(db_url) == len(files)


def test_an_interrupted_pull_keeps_committed_series_and_a_rerun_completes(
    store: Store, db_url: str, server_a: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = server_a.largest_study()
    by_series: dict[str, int] = {}
    for f in files:
        by_series[f.series] = by_series.get(f.series, 0) + 1
    assert len(by_series) >= 2, "the test needs a study with several series"

    real = DicomWebSource.series_metadata
    calls: list[str] = []

    def interrupted(self: DicomWebSource, study: str, series: str) -> list[dict[str, Any]]:
        calls.append(series)
        if len(calls) == 2:
            raise KeyboardInterrupt  # Ctrl-C while the second series is being fetched
        return real(self, study, series)

    monkeypatch.setattr(DicomWebSource, "series_metadata", interrupted)
    with pytest.raises(KeyboardInterrupt):
        DicomWebSource(server_a.url).pull(store, studies=[files[0].study])
    monkeypatch.undo()

    done = stored_instances(store, data_source_name(server_a.url))
    assert len(done) == by_series[calls[0]]
    assert {i.series_instance_uid for i in done.values()} == {calls[0]}

    report = DicomWebSource(server_a.url).pull(store, studies=[files[0].study])
    assert report.instances_present == by_series[calls[0]]
    assert report.instances_added == len(files) - by_series[calls[0]]
    check_against_files(store, report.data_source, files, server_a.url)
    assert instance_rows(db_url) == len(files)


def test_a_series_that_fails_to_store_is_rolled_back_whole(
    store: Store, server_a: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = server_a.largest_study()
    calls: list[int] = []
    real = Store.add_instances

    def failing(self: Store, instances: Any, **options: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("disk full")  # after the summary of series 2 was written
        return real(self, instances, **options)

    monkeypatch.setattr(Store, "add_instances", failing)
    with pytest.raises(RuntimeError):
        DicomWebSource(server_a.url, name="pacs").pull(store, studies=[files[0].study])
    monkeypatch.undo()
    study = store.get_study(files[0].study)
    assert study is not None
    [series_list] = study.series_lists
    assert len(series_list.series) == 1, "the second series' summary was not rolled back"
    assert series_list.series[0].instances


def test_auth_headers_are_sent_and_never_stored_or_logged(
    store: Store, db_url: str, server_auth: Server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # dicomweb-client, requests and urllib3 log requests
    study = server_auth.files[0].study
    with pytest.raises(PullError) as refused:
        DicomWebSource(server_auth.url).pull(store, studies=[study])
    assert "HTTP 401" in str(refused.value) and server_auth.url in str(refused.value)

    header = server_auth.orthanc.auth_header()
    report = DicomWebSource(server_auth.url, headers=header).pull(store, studies=[study])
    assert report.instances_added == len(server_auth.files)

    # credentials in the URL work too, and are kept out of names and messages
    with_password = server_auth.url.replace("http://", f"http://alice:{PASSWORD}@")
    source = DicomWebSource(with_password)
    assert source.name == data_source_name(server_auth.url)
    assert PASSWORD not in repr(source) and PASSWORD not in source.server
    assert source.pull(store, studies=[study]).instances_present == len(server_auth.files)

    dump = database_text(db_url)
    token = header["Authorization"].split()[1]
    # (not the word "Basic": the sop_class table names "Basic Text SR Storage" and others)
    basic = base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    assert token not in dump and PASSWORD not in dump and basic not in dump
    assert "GET" in caplog.text  # requests were logged, without credentials:
    assert token not in caplog.text and PASSWORD not in caplog.text
    check_against_files(store, report.data_source, server_auth.files, server_auth.url)


def test_unknown_study_is_a_clear_error(store: Store, server_a: Server) -> None:
    with pytest.raises(PullError, match=r"has no series of study 1\.2\.3\.4\.5") as error:
        DicomWebSource(server_a.url).pull(store, studies=["1.2.3.4.5"])
    assert server_a.url in str(error.value)
    assert store.get_study_instance_uids() == []


# ------------------------------------------------------------------------------ command line


def test_cli_pull_one_study_prints_a_summary_and_reruns_idempotently(
    db_url: str, server_a: Server
) -> None:
    files = server_a.study("CT_small.dcm")
    name = data_source_name(server_a.url)
    result = run(db_url, "pull", server_a.url, "--study", files[0].study)
    assert result.exit_code == 0, result.output
    assert (
        f"1 studies, 1 series from {name}: {len(files)} instances added, 0 already present"
        in result.stdout
    )
    again = run(db_url, "pull", server_a.url, "--study", files[0].study, "--data-source", name)
    assert again.exit_code == 0, again.output
    assert f"0 instances added, {len(files)} already present" in again.stdout
    assert instance_rows(db_url) == len(files)
    listed = run(db_url, "study", files[0].study)
    assert name in listed.output


def test_cli_pull_with_header_never_prints_or_stores_it(db_url: str, server_auth: Server) -> None:
    header = server_auth.orthanc.auth_header()["Authorization"]
    study = server_auth.files[0].study
    refused = CliRunner().invoke(main, ["--db", db_url, "pull", server_auth.url, "--study", study])
    assert refused.exit_code == 1 and "HTTP 401" in refused.output

    wrong = "Authorization: Basic " + base64.b64encode(b"alice:wrong-" + PASSWORD.encode()).decode()
    denied = CliRunner().invoke(
        main, ["--db", db_url, "pull", server_auth.url, "--study", study, "--header", wrong]
    )
    assert denied.exit_code == 1 and "HTTP 401" in denied.output
    assert wrong.split()[-1] not in denied.output

    result = run(
        db_url, "pull", server_auth.url, "--study", study, "--header", f"Authorization: {header}",
        "--data-source", "secure",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"{len(server_auth.files)} instances added" in result.output
    dump = database_text(db_url)
    for secret in (header, header.split()[1], PASSWORD):
        assert secret not in result.output and secret not in dump


def test_cli_pull_by_query_and_usage_errors(db_url: str, server_a: Server) -> None:
    result = run(db_url, "pull", server_a.url, "--query", "PatientID=1CT1", "-q")
    assert result.exit_code == 0, result.output
    expected = [f for f in server_a.files if _patient_id(f) == "1CT1"]
    assert f"{len(expected)} instances added" in result.output

    both = CliRunner().invoke(
        main, ["--db", db_url, "pull", server_a.url, "--study", "1.2.3", "--query", "A=b"]
    )
    assert both.exit_code == 2 and "not both" in both.output
    bad_query = CliRunner().invoke(main, ["--db", db_url, "pull", server_a.url, "--query", "A"])
    assert bad_query.exit_code == 2 and "KEY=VALUE" in bad_query.output
    bad_header = CliRunner().invoke(
        main, ["--db", db_url, "pull", server_a.url, "--header", "Bearer-s3cr3t-token"]
    )
    assert bad_header.exit_code == 2 and "Name: value" in bad_header.output
    assert "s3cr3t" not in bad_header.output
    bad_url = CliRunner().invoke(main, ["--db", db_url, "pull", "ftp://x/"])
    assert bad_url.exit_code == 2 and "http" in bad_url.output
    long_name = CliRunner().invoke(
        main, ["--db", db_url, "pull", server_a.url, "--data-source", "x" * 65]
    )
    assert long_name.exit_code == 2 and "1-64 characters" in long_name.output


# ----------------------------------------------------------------- a scripted DICOMweb server

STUDY = "1.2.826.0.1.3680043.8.498.100"
SERIES = [f"{STUDY}.1", f"{STUDY}.2", f"{STUDY}.3"]
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"


def _element(vr: str, *values: Any) -> dict[str, Any]:
    return {"vr": vr, "Value": list(values)} if values else {"vr": vr}


def summary_json(series: str, *, with_study: bool = True) -> dict[str, Any]:
    out = {
        "0020000E": _element("UI", series),
        "00080060": _element("CS", "CT"),
        "00200011": _element("IS", int(series.rsplit(".", 1)[1])),
    }
    if with_study:
        out["0020000D"] = _element("UI", STUDY)
    return out


def instance_json(series: str, number: int, bulk: str = "bulk/7fe00010") -> dict[str, Any]:
    return {
        "00080016": _element("UI", CT_IMAGE),
        "00080018": _element("UI", f"{series}.{number}"),
        "00080060": _element("CS", "CT"),
        "00100010": _element("PN", {"Alphabetic": "Scripted^Patient"}),
        "0020000D": _element("UI", STUDY),
        "0020000E": _element("UI", series),
        "00200013": _element("IS", number),
        "00280010": _element("US", 4),
        "00280011": _element("US", 4),
        "7FE00010": {"vr": "OW", "BulkDataURI": bulk},
    }


Route = Callable[[dict[str, list[str]]], tuple[int, Any]]


@dataclass
class Scripted:
    """A DICOMweb server answering from ``routes`` (path -> handler); records each request.

    ``delay`` holds the seconds to wait before answering the next request for a path (once).
    """

    routes: dict[str, Route]
    delay: dict[str, float] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/dicom-web"

    def reply(self, path: str, body: Any, status: int = 200) -> None:
        self.routes[path] = lambda query: (status, body)


@pytest.fixture
def scripted() -> Iterator[Scripted]:
    """A scripted server with one study of three series (2, 1 and 1 instances)."""
    server_state = Scripted(routes={})
    server_state.reply("/dicom-web/studies", [{"0020000D": _element("UI", STUDY)}])
    server_state.reply(f"/dicom-web/studies/{STUDY}/series", [summary_json(s) for s in SERIES])
    for index, series in enumerate(SERIES):
        count = 2 if index == 0 else 1
        server_state.reply(
            f"/dicom-web/studies/{STUDY}/series/{series}/metadata",
            [instance_json(series, n) for n in range(1, count + 1)],
        )

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            server_state.requests.append((parts.path, dict(self.headers.items())))
            time.sleep(server_state.delay.pop(parts.path, 0))
            route = server_state.routes.get(parts.path)
            status, body = route(parse_qs(parts.query)) if route else (404, {"error": "nope"})
            raw = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/dicom+json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(raw)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    server_state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server_state
    httpd.shutdown()
    httpd.server_close()


def metadata_path(series: str) -> str:
    return f"/dicom-web/studies/{STUDY}/series/{series}/metadata"


def committed_series(store: Store) -> dict[str, int]:
    study = store.get_study(STUDY)
    if study is None:
        return {}
    return {s.series_instance_uid: len(s.instances) for s in study.series}


def test_scripted_server_pull_works(store: Store, scripted: Scripted) -> None:
    report = DicomWebSource(scripted.url).pull(store)
    assert (report.studies, report.series, report.instances_added) == (1, 3, 4)
    inst = store.get_instance(STUDY, SERIES[0], f"{SERIES[0]}.1")
    assert inst is not None
    series_url = f"{scripted.url}/studies/{STUDY}/series/{SERIES[0]}"
    assert inst.metadata["PixelData"] == {"BulkDataURI": f"{series_url}/bulk/7fe00010"}


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"error": "boom"}, 500, "answered HTTP 500 Internal Server Error to the WADO-RS metadata"),
        (b'[{"0020000D": {"vr": "UI", "Val', 200, "sent malformed JSON for the WADO-RS metadata"),
        ("just a string", 200, "unexpected answer to the WADO-RS metadata"),
        ({"error": "gone"}, 404, "answered HTTP 404 Not Found to the WADO-RS metadata"),
    ],
)
def test_a_failing_series_names_server_study_and_series_and_keeps_earlier_ones(
    store: Store, scripted: Scripted, body: Any, status: int, message: str
) -> None:
    scripted.reply(metadata_path(SERIES[1]), body, status)
    url = scripted.url.replace("http://", f"http://bob:{PASSWORD}@")
    source = DicomWebSource(url, headers={"Authorization": f"Bearer {PASSWORD}"})
    with pytest.raises(PullError) as raised:
        source.pull(store)
    text_ = str(raised.value)
    assert message in text_
    assert f"DICOMweb server {scripted.url} " in text_
    assert f"series {SERIES[1]} of study {STUDY}" in text_
    assert PASSWORD not in text_ and "bob" not in text_
    assert committed_series(store) == {SERIES[0]: 2}
    assert raised.value.report is not None and raised.value.report.instances_added == 2
    # sent with every request, as basic auth from the URL overridden by the explicit header
    assert all(h.get("Authorization") == f"Bearer {PASSWORD}" for _, h in scripted.requests)


def test_keep_going_records_the_failure_and_pulls_the_rest(
    store: Store, scripted: Scripted
) -> None:
    scripted.reply(metadata_path(SERIES[1]), {"error": "boom"}, 500)
    report = DicomWebSource(scripted.url).pull(store, keep_going=True)
    assert committed_series(store) == {SERIES[0]: 2, SERIES[2]: 1}
    assert report.series == 2 and report.studies == 0
    [failure] = report.failures
    assert "HTTP 500" in failure and SERIES[1] in failure


def test_cli_with_fail_fast_reports_what_was_committed_before_the_error(
    db_url: str, scripted: Scripted
) -> None:
    scripted.reply(metadata_path(SERIES[2]), {"error": "boom"}, 500)
    result = CliRunner().invoke(main, ["--db", db_url, "pull", scripted.url, "-q", "--fail-fast"])
    assert result.exit_code == 1
    assert "before the error: 0 studies, 2 series" in result.output
    assert (
        f"HTTP 500 Internal Server Error to the WADO-RS metadata request of series {SERIES[2]}"
        in (result.output)
    )


def test_cli_goes_on_past_a_failed_series_and_reports_it_with_the_servers_answer(
    db_url: str, scripted: Scripted
) -> None:
    scripted.reply(metadata_path(SERIES[1]), {"error": "boom"}, 500)
    result = CliRunner().invoke(main, ["--db", db_url, "pull", scripted.url, "-q"])
    assert result.exit_code == 1
    assert "failed: " in result.output and "HTTP 500" in result.output
    assert SERIES[1] in result.output and "1 failed" in result.output
    engine = make_engine(db_url)
    with engine.connect() as conn:
        pulled = {row[0] for row in conn.execute(text("SELECT series_instance_uid FROM series"))}
    engine.dispose()
    assert {SERIES[0], SERIES[2]} <= pulled


def test_series_results_without_study_uid_are_filed_under_the_study_asked_for(
    store: Store, scripted: Scripted
) -> None:
    scripted.reply(
        f"/dicom-web/studies/{STUDY}/series",
        [summary_json(s, with_study=False) for s in SERIES],
    )
    report = DicomWebSource(scripted.url).pull(store, studies=[STUDY])
    assert report.instances_added == 4
    assert committed_series(store) == {SERIES[0]: 2, SERIES[1]: 1, SERIES[2]: 1}


def test_results_contradicting_the_request_are_errors(store: Store, scripted: Scripted) -> None:
    wrong = summary_json(SERIES[0])
    wrong["0020000D"] = _element("UI", "1.2.3.999")
    scripted.reply(f"/dicom-web/studies/{STUDY}/series", [wrong])
    with pytest.raises(PullError, match=r"with StudyInstanceUID 1\.2\.3\.999"):
        DicomWebSource(scripted.url).pull(store)

    scripted.reply(f"/dicom-web/studies/{STUDY}/series", [summary_json(SERIES[0])])
    stray = instance_json(SERIES[1], 1)
    scripted.reply(metadata_path(SERIES[0]), [instance_json(SERIES[0], 1), stray])
    with pytest.raises(PullError, match=rf"instance #1 of series {SERIES[0]}.*{SERIES[1]}"):
        DicomWebSource(scripted.url).pull(store)

    scripted.reply(f"/dicom-web/studies/{STUDY}/series", [{"00080060": _element("CS", "CT")}])
    with pytest.raises(PullError, match=r"result #0 of the QIDO-RS series search .* no Series"):
        DicomWebSource(scripted.url).pull(store)
    assert committed_series(store) == {}


def test_instances_the_store_rejects_name_the_series(store: Store, scripted: Scripted) -> None:
    broken = instance_json(SERIES[0], 1)
    del broken["00080018"]  # no SOP Instance UID
    scripted.reply(metadata_path(SERIES[0]), [broken])
    with pytest.raises(PullError, match=rf"series {SERIES[0]} of study {STUDY} .*SOPInstanceUID"):
        DicomWebSource(scripted.url).pull(store)
    assert committed_series(store) == {}


def test_a_slow_server_times_out_with_a_clear_error(store: Store, scripted: Scripted) -> None:
    scripted.delay[metadata_path(SERIES[0])] = 3
    started = time.monotonic()
    with pytest.raises(PullError, match=r"did not answer the WADO-RS metadata .* within 0.5 s$"):
        DicomWebSource(scripted.url, timeout=0.5, attempts=1).pull(store)
    assert time.monotonic() - started < 2.5


def test_busy_and_slow_answers_are_tried_again(store: Store, scripted: Scripted) -> None:
    answers = iter([(503, {"error": "busy"}), (200, [instance_json(SERIES[0], 1)])])
    scripted.routes[metadata_path(SERIES[0])] = lambda query: next(answers)
    scripted.delay[metadata_path(SERIES[1])] = 0.6  # longer than the timeout, once
    report = DicomWebSource(scripted.url, timeout=0.3, attempts=2).pull(store)
    assert report.instances_added == 3 and not report.failures


def test_an_unreachable_server_is_a_clear_error(store: Store) -> None:
    url = f"http://127.0.0.1:{free_port()}/dicom-web"
    with pytest.raises(
        PullError, match=r"cannot reach DICOMweb server .* search \(2 attempts\)"
    ) as error:
        DicomWebSource(url, attempts=2).pull(store)
    assert "object at 0x" not in str(error.value)


def test_search_pages_through_results_and_stops_when_the_server_ignores_offset(
    store: Store, scripted: Scripted, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dicomweb, "PAGE_SIZE", 2)
    studies = [f"1.2.826.0.1.3680043.8.498.{n}" for n in range(1, 6)]

    def paged(query: dict[str, list[str]]) -> tuple[int, Any]:
        offset, limit = int(query["offset"][0]), int(query["limit"][0])
        return 200, [{"0020000D": _element("UI", s)} for s in studies[offset : offset + limit]]

    scripted.routes["/dicom-web/studies"] = paged
    assert DicomWebSource(scripted.url).search_studies() == studies

    scripted.reply("/dicom-web/studies", [{"0020000D": _element("UI", s)} for s in studies])
    assert DicomWebSource(scripted.url).search_studies() == studies  # offset ignored
    assert len(scripted.requests) == 4 + 2  # 2 + 2 + 1 + an empty page; 5 + the same 5


def test_bulk_data_uris_are_made_absolute_as_ohif_does(store: Store, scripted: Scripted) -> None:
    relative, rooted = "bulk/0042", "/elsewhere/0042"
    absolute = f"http://someone:{PASSWORD}@cdn.example/0042"
    first = instance_json(SERIES[0], 1, relative)
    first["00540016"] = {"vr": "SQ", "Value": [{"00280010": {"vr": "OB", "BulkDataURI": rooted}}]}
    scripted.reply(metadata_path(SERIES[0]), [first, instance_json(SERIES[0], 2, absolute)])
    DicomWebSource(scripted.url).pull(store, studies=[STUDY])
    one = store.get_instance(STUDY, SERIES[0], f"{SERIES[0]}.1")
    two = store.get_instance(STUDY, SERIES[0], f"{SERIES[0]}.2")
    assert one is not None and two is not None
    series_url = f"{scripted.url}/studies/{STUDY}/series/{SERIES[0]}"
    assert one.metadata["PixelData"]["BulkDataURI"] == f"{series_url}/{relative}"
    origin = scripted.url.removesuffix("/dicom-web")
    sequence = one.metadata["RadiopharmaceuticalInformationSequence"]
    assert sequence[0]["Rows"] == {"BulkDataURI": origin + rooted}
    assert two.metadata["PixelData"]["BulkDataURI"] == "http://cdn.example/0042"


# --------------------------------------------------------------------------------- helpers


def test_data_source_names_and_redaction() -> None:
    assert data_source_name("http://alice:pw@PACS.example:8042/dicom-web/") == (
        "pacs.example:8042/dicom-web"
    )
    assert data_source_name("https://pacs") == "pacs"
    long = data_source_name("https://pacs.example/" + "x" * 100)
    assert len(long) <= 64 and long.startswith("pacs.example/xxx")
    assert long != data_source_name("https://pacs.example/" + "x" * 101)
    assert redact_url("https://u:p@h:1/a?b=c") == "https://h:1/a?b=c"


def test_parse_header_never_echoes_the_value() -> None:
    assert parse_header("Authorization:  Bearer abc ") == ("Authorization", "Bearer abc")
    for bad in ("Bearer abc", "Authorization:", "Bad Name: abc", ": abc"):
        with pytest.raises(ValueError) as error:
            parse_header(bad)
        assert "abc" not in str(error.value)


def test_urls_are_checked() -> None:
    for bad in ("ftp://pacs/dicom-web", "pacs/dicom-web", "http://pacs/dicom-web?token=1"):
        with pytest.raises(ValueError, match="the QIDO-RS root URL") as error:
            DicomWebSource(bad)
        assert "token" not in str(error.value)
    source = DicomWebSource("http://a:b@pacs/dicom-web/", wado_root="http://pacs/wado/")
    assert (source.qido_root, source.wado_root) == ("http://pacs/dicom-web", "http://pacs/wado")
    with pytest.raises(ValueError, match="not both"):
        source.pull(None, studies=["1.2"], query={"A": "b"})  # type: ignore[arg-type]

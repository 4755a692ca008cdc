"""Pulling from DICOMweb servers: real Orthanc servers, and a scripted one for failures.

The Orthanc servers (see ``orthanc.py``) hold the pydicom test files, uploaded through Orthanc's
REST API; every test then pulls into a fresh SQLite file and a fresh PostgreSQL schema and
checks the result against the files read with pydicom. Failures that Orthanc cannot be made to
produce (500s, malformed JSON, slow answers, incomplete series results) come from a small
scripted HTTP server started in a thread.
"""

from __future__ import annotations

import base64
import logging
from typing import Any

import pydicom
import pytest
from click.testing import CliRunner
from orthanc import (
    UploadedFile,
)
from pull_fixtures import (
    FILE_META,
    PASSWORD,
    Server,
    check_against_files,
    database_text,
    instance_rows,
    run,
    stored_instances,
)

from repository import EVENTS, Event, Store
from repository.cli import main
from repository.image_id import wadors_image_id
from repository.ingest import ingest
from repository.sources import (
    DicomWebSource,
    PullError,
    PullProgress,
    data_source_name,
)

pytest_plugins = ("pull_fixtures",)


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

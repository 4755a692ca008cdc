"""Event payloads carry OHIF's keys; OHIF's event names subscribe; unknown kinds pass by."""

from __future__ import annotations

import logging
import threading
from typing import Any

import orjson
import pytest
from click.testing import CliRunner
from sqlalchemy import insert

import repository
from repository import EVENTS, Event, InvalidValueError, Store, events
from repository.cli import main
from repository.schema import change_table

OHIF_KEYS = {
    EVENTS.STUDY_ADDED: {"StudyInstanceUID", "madeInClient"},
    EVENTS.SERIES_ADDED: {"StudyInstanceUID", "seriesSummaryMetadata", "madeInClient"},
    EVENTS.INSTANCES_ADDED: {"StudyInstanceUID", "SeriesInstanceUID", "madeInClient"},
    EVENTS.SERIES_UPDATED: {"StudyInstanceUID", "SeriesInstanceUID", "madeInClient"},
}


def instance(study: str, series: str, sop: str) -> dict[str, Any]:
    return {"StudyInstanceUID": study, "SeriesInstanceUID": series, "SOPInstanceUID": sop,
            "Modality": "CT"}  # fmt: skip


def test_every_kind_carries_ohif_payload_keys_delivered_and_read_back(store: Store) -> None:
    got: list[Event] = []
    store.subscribe("*", got.append, include_made_in_client=True)
    summary = {"StudyInstanceUID": "1.2.3", "SeriesInstanceUID": "1.2.3.1", "Modality": "MR",
               "SeriesDescription": "T1"}  # fmt: skip
    store.add_series_metadata([summary], data_source="pacs", made_in_client=True)
    store.add_instances([instance("1.2.3", "1.2.3.1", "1.2.3.1.1")], data_source="pacs")
    store.update_metadata_for_series("1.2.3", "1.2.3.1", {"WindowCenter": 40})

    assert [e.kind for e in got] == [EVENTS.STUDY_ADDED, EVENTS.SERIES_ADDED,
                                     EVENTS.INSTANCES_ADDED, EVENTS.SERIES_UPDATED]  # fmt: skip
    for e in got:
        assert OHIF_KEYS[EVENTS(e.kind)] <= set(e.payload), e.kind
        assert e.payload["StudyInstanceUID"] == "1.2.3"
        assert e.payload["madeInClient"] is e.made_in_client
        assert e.payload["data_source"] == "pacs" and e.payload["seq"] == e.seq
    study, series, added, updated = got
    assert study.made_in_client and series.made_in_client and not added.made_in_client
    assert series.payload["seriesSummaryMetadata"] == [summary]
    assert series.payload["SeriesInstanceUIDs"] == ["1.2.3.1"]
    assert added.payload["SeriesInstanceUID"] == "1.2.3.1" and added.payload["count"] == 1
    assert updated.payload["SeriesInstanceUID"] == "1.2.3.1"
    assert updated.payload["keys"] == ["WindowCenter"]
    assert store.changes() == got  # the change log holds exactly what was delivered


def test_series_added_lists_only_the_summaries_that_changed(store: Store) -> None:
    one = {"StudyInstanceUID": "1.2.3", "SeriesInstanceUID": "1.2.3.1", "SeriesNumber": 1}
    two = {"StudyInstanceUID": "1.2.3", "SeriesInstanceUID": "1.2.3.2", "SeriesNumber": 2}
    store.add_series_metadata([one, two])
    store.add_series_metadata([one, {**two, "SeriesDescription": "new"}])
    last = store.changes()[-1]
    assert last.kind is EVENTS.SERIES_ADDED
    assert last.payload["seriesSummaryMetadata"] == [{**two, "SeriesDescription": "new"}]


@pytest.mark.parametrize("kind", list(EVENTS))
def test_subscribing_by_ohif_event_name_gets_that_kind(store: Store, kind: EVENTS) -> None:
    got: list[EVENTS | str] = []
    store.subscribe(kind.ohif_name, lambda e: got.append(e.kind))
    store.add_series_metadata([{"StudyInstanceUID": "1.2.3", "SeriesInstanceUID": "1.2.3.1"}])
    store.add_instances([instance("1.2.3", "1.2.3.1", "1.2.3.1.1")])
    store.update_metadata_for_series("1.2.3", "1.2.3.1", {"WindowWidth": 400})
    store.delete_instances("1.2.3", "1.2.3.1", ["1.2.3.1.1"])  # its series and study go too
    assert got == [kind]


def test_ohif_event_names_are_ohifs() -> None:
    assert EVENTS.SERIES_ADDED.ohif_name == "event::dicomMetadataStore:seriesAdded"
    assert EVENTS.INSTANCES_ADDED.ohif_name == "event::dicomMetadataStore:instancesAdded"
    assert EVENTS.SERIES_UPDATED.ohif_name == "event::dicomMetadataStore:seriesUpdated"
    assert EVENTS.STUDY_ADDED.ohif_name == "event::dicomMetadataStore:studyAdded"
    assert EVENTS.STUDY_DELETED.ohif_name == "event::dicomMetadataStore:studyDeleted"
    assert EVENTS.SERIES_DELETED.ohif_name == "event::dicomMetadataStore:seriesDeleted"
    assert EVENTS.INSTANCES_DELETED.ohif_name == "event::dicomMetadataStore:instancesDeleted"


def test_an_unknown_event_name_is_refused_naming_the_known_ones(store: Store) -> None:
    for name in ("STUDY_LOADED", "event::dicomMetadataStore:studyLoaded", "series_added"):
        with pytest.raises(InvalidValueError, match=rf"unknown event '{name}'.*SERIES_ADDED"):
            store.subscribe(name, print)
    with pytest.raises(ValueError, match="unknown event"):  # what older callers caught
        store.subscribe("nope", print)


# ---------------------------------------------------------------------------- unknown kinds


def _newer_writer_appends(store: Store, kind: str, study: str) -> None:
    """What a newer version sharing the database does: a change row of a kind we lack."""
    with store.engine.begin() as conn:
        conn.execute(insert(change_table).values(
            kind=kind, study_instance_uid=study, series_instance_uid=None, data_source="default",
            made_in_client=False, payload={"StudyInstanceUID": study, "reason": "purged"},
        ))  # fmt: skip


def _wait_for(condition: Any, what: str) -> None:
    done = threading.Event()
    for _ in range(200):
        if condition():
            return
        done.wait(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_an_old_follower_passes_over_a_kind_written_by_a_newer_version(
    db_url: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(events, "_unknown_kinds", set())
    caplog.set_level(logging.WARNING, logger="repository.events")
    with repository.connect(db_url, poll_interval=0.1) as old, repository.connect(db_url) as other:
        known: list[Event] = []
        everything: list[Event] = []
        old.subscribe(EVENTS.STUDY_ADDED, known.append)
        old.subscribe("*", everything.append)
        other.add_study({"StudyInstanceUID": "1.2.1"})
        _newer_writer_appends(other, "STUDY_ARCHIVED", "1.2.1")
        _newer_writer_appends(other, "STUDY_ARCHIVED", "1.2.2")
        other.add_study({"StudyInstanceUID": "1.2.3"})  # a known change after the unknown ones
        _wait_for(lambda: len(everything) == 4 and len(known) == 2, "the follower")

        assert [e.study_instance_uid for e in known] == ["1.2.1", "1.2.3"]
        assert [(str(e.kind), e.known) for e in everything] == [
            ("STUDY_ADDED", True), ("STUDY_ARCHIVED", False), ("STUDY_ARCHIVED", False),
            ("STUDY_ADDED", True),
        ]  # fmt: skip
        assert everything[1].payload["reason"] == "purged"
        assert [str(e.kind) for e in old.changes()] == [str(e.kind) for e in everything]
        old.add_study({"StudyInstanceUID": "1.2.4"})  # its own commits still deliver too
        assert known[-1].study_instance_uid == "1.2.4"
    warnings = [r for r in caplog.records if "STUDY_ARCHIVED" in r.getMessage()]
    assert len(warnings) == 1  # logged once per kind, not per change or per read


def test_dicom_repo_changes_shows_an_unknown_kind(store: Store, db_url: str) -> None:
    store.add_study({"StudyInstanceUID": "1.2.1"})
    _newer_writer_appends(store, "STUDY_ARCHIVED", "1.2.1")
    result = CliRunner().invoke(main, ["--db", db_url, "changes"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split("\t")[1:3] == ["STUDY_ADDED", "1.2.1"]
    assert lines[1].split("\t")[1:3] == ["STUDY_ARCHIVED", "1.2.1"]
    assert '"reason":"purged"' in lines[1]
    as_json = CliRunner().invoke(main, ["--db", db_url, "changes", "--json"])
    assert '"kind":"STUDY_ARCHIVED"' in as_json.output


def test_dicom_repo_changes_prints_series_summaries_only_as_json(store: Store, db_url: str) -> None:
    summary = {"StudyInstanceUID": "1.2.3", "SeriesInstanceUID": "1.2.3.1", "Modality": "MR"}
    store.add_series_metadata([summary])
    text = CliRunner().invoke(main, ["--db", db_url, "changes"], catch_exceptions=False)
    line = text.output.splitlines()[-1]
    assert "SERIES_ADDED" in line and '"SeriesInstanceUIDs":["1.2.3.1"]' in line
    assert "seriesSummaryMetadata" not in line  # one short line per change
    as_json = CliRunner().invoke(main, ["--db", db_url, "changes", "--json"])
    last = orjson.loads(as_json.output.splitlines()[-1])
    assert last["payload"]["seriesSummaryMetadata"] == [summary]

"""Deleting studies, series and instances: rows, derived values, events after commit."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text
from test_store import count, instance

from repository import EVENTS, Event, NotFoundError, Store
from repository.normalize import normalize_instance

TABLES = ("study", "series_list", "series", "instance", "instance_dicom_json")


def counts(store: Store) -> dict[str, int]:
    return {table: count(store, table) for table in TABLES}


def record(store: Store) -> list[Event]:
    got: list[Event] = []
    store.subscribe("*", got.append)
    return got


def two_series_study(store: Store, study: str = "1.2.3", **extra: Any) -> None:
    store.add_instances(
        [instance(study, f"{study}.1", f"{study}.1.{n}", **extra) for n in (1, 2, 3)]
        + [instance(study, f"{study}.2", f"{study}.2.1", Modality="SR",
                    SOPClassUID="1.2.840.10008.5.1.4.1.1.88.11")]
    )  # fmt: skip


def keep_json(store: Store) -> None:
    """What the server does the first time it serves metadata: a kept DICOM JSON row each."""
    with store.engine.begin() as conn:
        conn.execute(text("INSERT INTO instance_dicom_json (instance_id, generation, json) "
                          "SELECT id, 0, '{}' FROM instance"))  # fmt: skip


def test_delete_study_removes_every_row_under_it_and_fires_after_commit(store: Store) -> None:
    two_series_study(store)
    two_series_study(store, "1.2.4")
    keep_json(store)
    got = record(store)
    result = store.delete_study("1.2.3")
    assert result.studies == ("1.2.3",) and result.instances == 4
    assert sorted(result.series) == [("default", "1.2.3.1"), ("default", "1.2.3.2")]
    assert counts(store) == {"study": 1, "series_list": 1, "series": 2, "instance": 4,
                             "instance_dicom_json": 4}  # fmt: skip
    assert store.get_study("1.2.3") is None and store.get_study("1.2.4") is not None
    assert [e.kind for e in got] == [EVENTS.STUDY_DELETED]
    assert got[0].payload == {
        "StudyInstanceUID": "1.2.3", "madeInClient": False, "data_source": "default",
        "SeriesInstanceUIDs": ["1.2.3.1", "1.2.3.2"], "count": 4, "studyRemoved": True,
        "seq": got[0].seq}  # fmt: skip
    assert store.changes(since=got[0].seq - 1) == got


def test_delete_series_updates_the_study_and_takes_an_emptied_study_along(store: Store) -> None:
    two_series_study(store)
    got = record(store)
    store.delete_series("1.2.3", "1.2.3.2")
    study = store.get_study("1.2.3")
    assert study is not None
    assert study.modalities_in_study == ("CT",)
    assert study.metadata["NumberOfStudyRelatedSeries"] == 1
    assert study.metadata["NumberOfStudyRelatedInstances"] == 3
    assert [(e.kind, e.series_instance_uid, e.payload["count"]) for e in got] == [
        (EVENTS.SERIES_DELETED, "1.2.3.2", 1)]  # fmt: skip
    store.delete_series("1.2.3", "1.2.3.1")
    assert [e.kind for e in got[1:]] == [EVENTS.SERIES_DELETED, EVENTS.STUDY_DELETED]
    assert got[-1].payload["studyRemoved"] is True
    assert counts(store) == dict.fromkeys(TABLES, 0)


def test_delete_instances_lowers_counts_and_the_series_summary(store: Store) -> None:
    summary = {"StudyInstanceUID": "1.2.3", "SeriesInstanceUID": "1.2.3.1", "Modality": "CT",
               "NumberOfSeriesRelatedInstances": 3}  # fmt: skip
    store.add_series_metadata([summary])
    store.add_instances([instance("1.2.3", "1.2.3.1", f"1.2.3.1.{n}") for n in (1, 2, 3)])
    got = record(store)
    result = store.delete_instances("1.2.3", "1.2.3.1", ["1.2.3.1.1", "1.2.3.1.3"])
    assert result.instances == 2 and not result.series
    series = store.get_series("1.2.3", "1.2.3.1")
    assert series is not None
    assert [i.sop_instance_uid for i in series.instances] == ["1.2.3.1.2"]
    assert series.metadata["NumberOfSeriesRelatedInstances"] == 1
    study = store.get_study("1.2.3")
    assert study is not None and study.metadata["NumberOfStudyRelatedInstances"] == 1
    assert [(e.kind, e.payload["SOPInstanceUIDs"]) for e in got] == [
        (EVENTS.INSTANCES_DELETED, ["1.2.3.1.1", "1.2.3.1.3"])]  # fmt: skip


def test_deleting_what_is_absent_is_not_found_and_removes_nothing(store: Store) -> None:
    two_series_study(store)
    before = counts(store)
    got = record(store)
    with pytest.raises(NotFoundError, match=r"study 9\.9 is not stored"):
        store.delete_study("9.9")
    with pytest.raises(NotFoundError, match=r"series 1\.2\.3\.9 of study 1\.2\.3"):
        store.delete_series("1.2.3", "1.2.3.9")
    with pytest.raises(NotFoundError, match=r"1\.2\.3\.1\.9 not stored.*nothing was deleted"):
        store.delete_instances("1.2.3", "1.2.3.1", ["1.2.3.1.1", "1.2.3.1.9"])
    with pytest.raises(NotFoundError, match="in data source 'elsewhere'"):
        store.delete_study("1.2.3", data_source="elsewhere")
    assert counts(store) == before and got == []


def test_a_data_source_is_deleted_alone_and_the_study_stays(store: Store) -> None:
    two_series_study(store)
    store.add_instances([instance("1.2.3", "1.2.3.1", "1.2.3.1.1")], data_source="pacs")
    got = record(store)
    store.delete_study("1.2.3", data_source="default")
    study = store.get_study("1.2.3")
    assert study is not None and [sl.data_source for sl in study.series_lists] == ["pacs"]
    assert study.metadata["NumberOfStudyRelatedInstances"] == 1
    assert [(e.kind, e.data_source, e.payload["studyRemoved"]) for e in got] == [
        (EVENTS.STUDY_DELETED, "default", False)]  # fmt: skip


def test_a_delete_inside_a_transaction_joins_it_and_a_rollback_keeps_everything(
    store: Store,
) -> None:
    two_series_study(store)
    before = counts(store)
    got = record(store)
    with pytest.raises(RuntimeError), store.transaction():
        store.delete_study("1.2.3")
        assert store.get_study("1.2.3") is None  # read your own write
        raise RuntimeError("changed my mind")
    assert counts(store) == before and got == []
    with store.transaction():
        store.delete_series("1.2.3", "1.2.3.1")
        store.delete_series("1.2.3", "1.2.3.2")
        assert got == []  # nothing before the commit
    assert [e.kind for e in got] == [EVENTS.SERIES_DELETED] * 2 + [EVENTS.STUDY_DELETED]


def test_a_deleted_instance_is_stored_again_when_re_added(store: Store) -> None:
    two_series_study(store)
    store.delete_instances("1.2.3", "1.2.3.1", ["1.2.3.1.1"])
    again = store.add_instances([instance("1.2.3", "1.2.3.1", "1.2.3.1.1", SeriesNumber=7)])
    assert (again.added, again.already_present) == (1, 0)
    found = store.get_instance("1.2.3", "1.2.3.1", "1.2.3.1.1")
    assert found is not None and found.metadata["SeriesNumber"] == 7
    store.delete_study("1.2.3")
    assert store.add_instances([instance("1.2.3", "1.2.3.1", "1.2.3.1.1")]).studies_added == (
        "1.2.3",)  # fmt: skip


def test_delete_results_name_the_files_of_the_removed_instances(store: Store) -> None:
    normalized = normalize_instance(instance("1.2.3", "1.2.3.1", "1.2.3.1.1"), source="test")
    # file ingest records the file each SOP instance was read from
    store.add_normalized([normalized], paths={"1.2.3.1.1": "/data/in/place.dcm"})
    assert store.delete_study("1.2.3").files == ("/data/in/place.dcm",)


@pytest.mark.parametrize("bad", ["", "1..2", "x" * 70])
def test_malformed_uids_are_refused_before_anything_is_touched(store: Store, bad: str) -> None:
    two_series_study(store)
    with pytest.raises(ValueError, match="UID"):
        store.delete_study(bad)
    with pytest.raises(ValueError, match="UID"):
        store.delete_instances("1.2.3", "1.2.3.1", [bad])
    assert count(store, "instance") == 4

"""Events: fired after commit only, in commit order, recorded in the change log."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from sqlalchemy import text

from repository import EVENTS, Event, InvalidUIDError, Store


def instance(study: str, series: str, sop: str, **extra: Any) -> dict[str, Any]:
    return {"StudyInstanceUID": study, "SeriesInstanceUID": series, "SOPInstanceUID": sop,
            "Modality": "CT", **extra}  # fmt: skip


class Recorder:
    """Subscribes to every event; remembers what it got and whether the data was committed."""

    def __init__(self, store: Store, **options: Any) -> None:
        self.events: list[Event] = []
        self.store = store
        self.visible: list[bool] = []
        for kind in EVENTS:
            store.subscribe(kind, self, **options)

    def __call__(self, event: Event) -> None:
        self.events.append(event)
        # Another connection must already see the data: delivered strictly after commit.
        with self.store.engine.connect() as conn:
            found = conn.execute(
                text("SELECT count(*) FROM study WHERE study_instance_uid = :uid"),
                {"uid": event.study_instance_uid},
            ).scalar_one()
        self.visible.append(found == 1)

    @property
    def kinds(self) -> list[str]:
        return [e.kind.value for e in self.events]


def changes(store: Store) -> list[tuple[int, str, str | None]]:
    with store.engine.connect() as conn:
        rows = conn.execute(text("SELECT seq, kind, series_instance_uid FROM change ORDER BY seq"))
        return [tuple(r) for r in rows]  # type: ignore[misc]


def test_add_instances_fires_study_added_then_instances_added_per_series(store: Store) -> None:
    rec = Recorder(store)
    store.add_instances([instance("1.2.3", "1.2.3.1", "1.1"), instance("1.2.3", "1.2.3.1", "1.2"),
                         instance("1.2.3", "1.2.3.2", "2.1")])  # fmt: skip
    assert rec.kinds == ["STUDY_ADDED", "INSTANCES_ADDED", "INSTANCES_ADDED"]
    assert all(rec.visible)
    added = [e for e in rec.events if e.kind is EVENTS.INSTANCES_ADDED]
    assert {(e.series_instance_uid, e.payload["count"]) for e in added} == {
        ("1.2.3.1", 2), ("1.2.3.2", 1)}  # fmt: skip
    assert [e.seq for e in rec.events] == sorted(e.seq for e in rec.events)
    assert [seq for seq, _, _ in changes(store)] == [e.seq for e in rec.events]


def test_re_adding_known_instances_fires_nothing(store: Store) -> None:
    store.add_instances([instance("1.2.3", "1.2.3.1", "1.1")])
    rec = Recorder(store)
    store.add_instances([instance("1.2.3", "1.2.3.1", "1.1")])
    assert rec.events == []


def test_rolled_back_transaction_fires_nothing_and_writes_nothing(store: Store) -> None:
    rec = Recorder(store)
    with pytest.raises(RuntimeError), store.transaction():
        store.add_instances([instance("1.2.3", "1.2.3.1", "1.1")])
        raise RuntimeError("boom")
    assert rec.events == []
    assert store.get_study_instance_uids() == []
    assert changes(store) == []


def test_transaction_groups_adds_into_one_commit_with_events_after_it(store: Store) -> None:
    rec = Recorder(store)
    with store.transaction():
        store.add_instances([instance("1.2.3", "1.2.3.1", "1.1")])
        store.add_series_metadata({"StudyInstanceUID": "1.2.3", "SeriesInstanceUID": "1.2.3.2"})
        assert rec.events == []  # nothing before commit
        assert store.get_series("1.2.3", "1.2.3.2") is not None  # reads see own writes
    assert rec.kinds == ["STUDY_ADDED", "INSTANCES_ADDED", "SERIES_ADDED"]
    assert all(rec.visible)


def test_failed_add_inside_a_transaction_rolls_back_only_itself(store: Store) -> None:
    rec = Recorder(store)
    with store.transaction():
        store.add_instances([instance("1.2.3", "1.2.3.1", "1.1")])
        with pytest.raises(InvalidUIDError):
            store.add_instances([instance("1.2.4", "1.2.4.1", "not a uid")])
    assert store.get_study_instance_uids() == ["1.2.3"]
    assert rec.kinds == ["STUDY_ADDED", "INSTANCES_ADDED"]


def test_a_failing_subscriber_is_logged_and_does_not_affect_the_write_or_others(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(event: Event) -> None:
        raise ValueError("subscriber bug")

    store.subscribe(EVENTS.INSTANCES_ADDED, broken)
    rec = Recorder(store)
    with caplog.at_level(logging.ERROR, logger="repository.events"):
        result = store.add_instances([instance("1.2.3", "1.2.3.1", "1.1")])
    assert result.added == 1
    assert "INSTANCES_ADDED" in rec.kinds
    assert "subscriber bug" in caplog.text


def test_made_in_client_events_reach_only_subscribers_that_ask(store: Store) -> None:
    ordinary = Recorder(store)
    eager = Recorder(store, include_made_in_client=True)
    store.add_instances([instance("1.2.3", "1.2.3.1", "1.1")], made_in_client=True)
    assert ordinary.events == []
    assert eager.kinds == ["STUDY_ADDED", "INSTANCES_ADDED"]
    assert all(e.made_in_client for e in eager.events)
    with store.engine.connect() as conn:
        flags = conn.execute(text("SELECT made_in_client FROM change")).scalars().all()
    assert flags and all(flags)


def test_series_added_once_per_call_that_changed_something(store: Store) -> None:
    rec = Recorder(store)
    summary = {"StudyInstanceUID": "1.2.3", "SeriesInstanceUID": "1.2.3.1", "Modality": "CT"}
    store.add_series_metadata([summary, {**summary, "SeriesInstanceUID": "1.2.3.2"}])
    store.add_series_metadata([summary])  # nothing new: no event
    store.add_series_metadata([{**summary, "SeriesDescription": "new"}])
    series_added = [e for e in rec.events if e.kind is EVENTS.SERIES_ADDED]
    assert [e.payload["SeriesInstanceUIDs"] for e in series_added] == [
        ["1.2.3.1", "1.2.3.2"], ["1.2.3.1"]]  # fmt: skip
    assert rec.kinds[0] == "STUDY_ADDED"


def test_update_metadata_for_series_fires_series_updated(store: Store) -> None:
    store.add_instances([instance("1.2.3", "1.2.3.1", "1.1")])
    rec = Recorder(store)
    store.update_metadata_for_series("1.2.3", "1.2.3.1", {"WindowCenter": 40})
    assert rec.kinds == ["SERIES_UPDATED"]
    assert rec.events[0].payload["keys"] == ["WindowCenter"]


def test_add_study_fires_study_added_only_when_new(store: Store) -> None:
    rec = Recorder(store)
    store.add_study({"StudyInstanceUID": "1.2.3"})
    store.add_study({"StudyInstanceUID": "1.2.3"})
    assert rec.kinds == ["STUDY_ADDED"]


def test_unsubscribe_stops_delivery(store: Store) -> None:
    got: list[Event] = []
    sub = store.subscribe("STUDY_ADDED", got.append)
    store.add_study({"StudyInstanceUID": "1.2.3"})
    sub.unsubscribe()
    sub.unsubscribe()
    store.add_study({"StudyInstanceUID": "1.2.4"})
    assert [e.study_instance_uid for e in got] == ["1.2.3"]


def test_subscribing_to_an_unknown_event_is_an_error(store: Store) -> None:
    with pytest.raises(ValueError, match="SERIES_ADDED"):
        store.subscribe("SERIES_ADED", print)


def test_events_are_the_four_ohif_events_and_three_deletes() -> None:
    assert {e.value for e in EVENTS} == {
        "STUDY_ADDED", "SERIES_ADDED", "INSTANCES_ADDED", "SERIES_UPDATED",
        "STUDY_DELETED", "SERIES_DELETED", "INSTANCES_DELETED"}  # fmt: skip

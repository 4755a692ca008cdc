"""The change feed: store.changes(), subscribe(since=), gap-free order, and `dicom-repo changes`."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner
from concurrent_workers import TIMEOUT, app_url, instance, wait_for_commit_or_wait, wait_until
from sqlalchemy import event

import repository
from repository import EVENTS, Event, InvalidValueError, Store
from repository.cli import main


@pytest.fixture
def stores(db_url: str) -> Iterator[list[Store]]:
    """Three stores on one database, as three processes would have (each its own engine)."""
    opened = [repository.connect(db_url, poll_interval=0.05) for _ in range(3)]
    yield opened
    for store in opened:
        store.close()


def study(uid: str) -> dict[str, str]:
    return {"StudyInstanceUID": uid}


def test_changes_returns_committed_changes_in_order_and_pages(store: Store) -> None:
    store.add_instances([instance("1.2.3", "1.2.3.1", "1.2.3.1.1"),
                         instance("1.2.3", "1.2.3.2", "1.2.3.2.1")])  # fmt: skip
    store.add_study(study("1.2.4"))
    everything = store.changes()
    assert [e.kind.value for e in everything] == [
        "STUDY_ADDED", "INSTANCES_ADDED", "INSTANCES_ADDED", "STUDY_ADDED"]  # fmt: skip
    assert [e.seq for e in everything] == sorted(e.seq for e in everything)
    assert everything[1].payload["count"] == 1 and everything[1].payload["seq"] == everything[1].seq
    first = store.changes(limit=2)
    rest = store.changes(since=first[-1].seq, limit=1000)
    assert first + rest == everything
    assert store.changes(since=everything[-1].seq) == []


def test_changes_rejects_bad_arguments(store: Store) -> None:
    with pytest.raises(InvalidValueError, match="since"):
        store.changes(since=-1)
    with pytest.raises(InvalidValueError, match="limit"):
        store.changes(limit=0)
    with pytest.raises(ValueError, match="since"):
        store.subscribe(EVENTS.STUDY_ADDED, print, since=-3)


def test_poll_interval_must_be_positive(db_url: str) -> None:
    with pytest.raises(ValueError, match="poll_interval"):
        repository.connect(db_url, poll_interval=0)


def test_a_rolled_back_transaction_leaves_nothing_in_the_feed(store: Store) -> None:
    with pytest.raises(RuntimeError), store.transaction():
        store.add_study(study("1.2.3"))
        raise RuntimeError("boom")
    store.add_study(study("1.2.4"))
    assert [e.study_instance_uid for e in store.changes()] == ["1.2.4"]


def test_a_change_that_commits_late_is_not_skipped(db_url: str) -> None:
    """Writer A has recorded its change and not committed; writer B commits after it; a
    follower reads; then A commits. Had A's seq been handed out before B's (seq order !=
    commit order) a follower remembering the last seq it saw would never see A's change."""
    name = f"writer-b-{uuid.uuid4().hex[:8]}"
    a = repository.connect(db_url)
    b = repository.connect(app_url(db_url, name))
    reader = repository.connect(db_url, poll_interval=0.05)
    got: list[Event] = []
    reader.subscribe("*", got.append)
    recorded, release = threading.Event(), threading.Event()

    @event.listens_for(a.engine, "commit")
    def hold_before_commit(conn: Any) -> None:  # A's changes are recorded, not committed
        recorded.set()
        assert release.wait(TIMEOUT)

    writer_a = threading.Thread(target=lambda: a.add_study(study("1.2.1")))
    writer_b = threading.Thread(target=lambda: b.add_study(study("1.2.2")))
    try:
        writer_a.start()
        assert recorded.wait(TIMEOUT)
        writer_b.start()
        # B either commits (were seq order != commit order) or waits for A
        wait_for_commit_or_wait(writer_b, db_url, name)
        seen = reader.changes()  # a follower reads now ...
        last = seen[-1].seq if seen else 0
    finally:
        release.set()
        writer_a.join(TIMEOUT)
        writer_b.join(TIMEOUT)
    later = reader.changes(since=last)  # ... and later reads on from the last seq it saw
    assert [e.study_instance_uid for e in seen + later] == ["1.2.1", "1.2.2"]
    wait_until(lambda: len(got) >= 2, "the subscriber to get both changes")
    assert [e.study_instance_uid for e in got] == ["1.2.1", "1.2.2"]
    for store in (a, b, reader):
        store.close()


def test_a_store_gets_the_commits_of_another_store_once_each_in_commit_order(
    stores: list[Store],
) -> None:
    writer, follower, _ = stores
    own: list[Event] = []
    other: list[Event] = []
    writer.subscribe(EVENTS.INSTANCES_ADDED, own.append)
    follower.subscribe(EVENTS.INSTANCES_ADDED, other.append)
    for n in range(1, 6):
        writer.add_instances([instance("1.2.3", f"1.2.3.{n}", f"1.2.3.{n}.1")])
        assert len(own) == n  # the writer's own subscriber: before add_instances returned
    wait_until(lambda: len(other) >= 5, "the other store to get 5 events")
    assert [e.seq for e in other] == [e.seq for e in own]
    writer.add_study(study("1.2.4"))  # nothing else arrives, nothing twice
    wait_until(lambda: follower.changes(since=own[-1].seq) != [], "the study")
    follower._feed.deliver()
    assert len(other) == 5


def test_subscribe_since_replays_what_was_missed_then_follows(stores: list[Store]) -> None:
    writer, follower, _ = stores
    for n in range(1, 4):
        writer.add_instances([instance("1.2.3", f"1.2.3.{n}", f"1.2.3.{n}.1")])
    first = writer.changes()[1].seq  # INSTANCES_ADDED of series 1
    got: list[Event] = []
    follower.subscribe(EVENTS.INSTANCES_ADDED, got.append, since=first)
    wait_until(lambda: len(got) >= 2, "the replay")
    writer.add_instances([instance("1.2.3", "1.2.3.4", "1.2.3.4.1")])
    wait_until(lambda: len(got) >= 3, "the new event")
    assert [e.series_instance_uid for e in got] == ["1.2.3.2", "1.2.3.3", "1.2.3.4"]
    everything: list[Event] = []
    follower.subscribe("*", everything.append, since=0)
    wait_until(lambda: len(everything) >= 5, "a replay of everything")
    assert [e.seq for e in everything] == [e.seq for e in writer.changes()]


def test_subscribe_without_since_starts_from_now(stores: list[Store]) -> None:
    writer, follower, _ = stores
    writer.add_study(study("1.2.1"))
    got: list[Event] = []
    follower.subscribe(EVENTS.STUDY_ADDED, got.append)
    writer.add_study(study("1.2.2"))
    wait_until(lambda: len(got) >= 1, "the new study")
    assert [e.study_instance_uid for e in got] == ["1.2.2"]


def test_a_subscriber_that_writes_gets_its_own_change_after_the_current_one(store: Store) -> None:
    got: list[str] = []

    def react(event: Event) -> None:
        got.append(event.study_instance_uid)
        if event.study_instance_uid == "1.2.1":
            store.add_study(study("1.2.2"))  # delivered after this callback returns
            got.append("written")

    store.subscribe(EVENTS.STUDY_ADDED, react)
    store.add_study(study("1.2.1"))
    wait_until(lambda: len(got) >= 3, "the reaction's own event")
    assert got == ["1.2.1", "written", "1.2.2"]


def test_close_stops_the_follower_thread(db_url: str) -> None:
    store = repository.connect(db_url)
    store.subscribe(EVENTS.STUDY_ADDED, print)
    assert any(t.name == "dicom-repo-feed" for t in threading.enumerate())
    follower = store._feed._follower
    store.close()
    assert follower is not None and not follower.is_alive()


# ------------------------------------------------------------------------------- CLI


def run(url: str, *args: str) -> Any:
    return CliRunner().invoke(main, ["--db", url, *args], catch_exceptions=False)


def test_cli_changes_prints_the_feed_as_text_and_json(db_url: str) -> None:
    with repository.connect(db_url) as store:
        store.add_instances([instance("1.2.3", "1.2.3.1", "1.2.3.1.1")], made_in_client=True)
        store.add_study(study("1.2.4"), data_source="pacs")
        seqs = [e.seq for e in store.changes()]
    text = run(db_url, "changes")
    assert text.exit_code == 0, text.output
    lines = text.output.splitlines()
    assert [line.split("\t")[:2] for line in lines] == [
        [str(seqs[0]), "STUDY_ADDED"], [str(seqs[1]), "INSTANCES_ADDED"],
        [str(seqs[2]), "STUDY_ADDED"]]  # fmt: skip
    assert '"count":1' in lines[1] and "made in client" in lines[1] and "pacs" in lines[2]
    as_json = run(db_url, "changes", "--json", "--since", str(seqs[0]), "--limit", "1")
    assert as_json.exit_code == 0, as_json.output
    (only,) = [json.loads(line) for line in as_json.output.splitlines()]
    assert only["seq"] == seqs[1] and only["kind"] == "INSTANCES_ADDED"
    assert only["series_instance_uid"] == "1.2.3.1" and only["made_in_client"] is True
    assert only["payload"]["count"] == 1
    assert run(db_url, "changes", "--since", str(seqs[-1])).output == ""
    bad = CliRunner().invoke(main, ["--db", db_url, "changes", "--follow", "--limit", "3"])
    assert bad.exit_code == 2 and "--limit cannot be combined with --follow" in bad.output

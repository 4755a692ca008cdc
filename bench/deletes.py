"""delete-study and prune: the store's deletes vs ``DELETE FROM`` by hand, same run, same data.

    python -m bench delete-study --db URL [--instances 1000] [--rounds 5]
    python -m bench prune --db URL [--studies 10000]

``delete-study``: a study of 10 series of 100 instances (copies of pydicom's CT_small with their
own UIDs) among 5 such studies; :meth:`Store.delete_study` (study lock, counts for the events,
derived values, change-log rows) vs six ``DELETE FROM`` statements by hand in one transaction,
each run on the same study re-added between runs, alternating, the median of ``rounds`` each.

``prune``: ``studies`` one-instance studies older than the rule among a tenth as many recent ones;
:func:`repository.retention.prune` (one transaction per study, so that a crash loses nothing) vs
the same rule as six set-based ``DELETE FROM`` statements in one transaction, and, printed
beside it, by hand one transaction per study. The data is re-added between the two.
"""

from __future__ import annotations

import copy
import datetime as dt
import statistics
from collections.abc import Callable
from pathlib import Path

import pydicom
from pydicom.uid import generate_uid
from sqlalchemy import Connection, Engine, text

import repository
from repository.engine import make_engine
from repository.normalize import NormalizedInstance
from repository.reading import read_file
from repository.retention import PruneRule, prune

from .common import emit, scratch, timed

BATCH = 2000
OLD = "20040119"  # CT_small's StudyDate

_INSTANCES_OF = (
    "SELECT i.id FROM instance i JOIN series s ON s.id = i.series_id "
    "JOIN series_list l ON l.id = s.series_list_id JOIN study st ON st.id = l.study_id WHERE {}"
)
_SERIES_OF = (
    "SELECT s.id FROM series s JOIN series_list l ON l.id = s.series_list_id "
    "JOIN study st ON st.id = l.study_id WHERE {}"
)
_LISTS_OF = "SELECT l.id FROM series_list l JOIN study st ON st.id = l.study_id WHERE {}"
BY_HAND = (
    "DELETE FROM sop_instance WHERE sop_instance_uid IN ("
    + _INSTANCES_OF.replace("SELECT i.id", "SELECT i.sop_instance_uid")
    + ")",
    "DELETE FROM instance_dicom_json WHERE instance_id IN (" + _INSTANCES_OF + ")",
    "DELETE FROM instance WHERE series_id IN (" + _SERIES_OF + ")",
    "DELETE FROM series WHERE series_list_id IN (" + _LISTS_OF + ")",
    "DELETE FROM series_list WHERE study_id IN (SELECT st.id FROM study st WHERE {})",
    "DELETE FROM study WHERE id IN (SELECT st.id FROM study st WHERE {})",
)
"""Deleting the studies matching a condition on ``st`` (the study table) by hand, bottom-up,
their SOP Instance UIDs' registry rows first (every bench instance is in one data source):
without those, the same instances added again would be taken as stored already."""


def _studies(count: int, series: int, per_series: int, date: str) -> list[NormalizedInstance]:
    template = read_file(Path(pydicom.__file__).parent / "data" / "test_files" / "CT_small.dcm")
    out = []
    for _ in range(count):
        study = generate_uid()
        for _ in range(series):
            series_uid = generate_uid()
            for number in range(1, per_series + 1):
                sop = generate_uid()
                md = copy.deepcopy(dict(template.metadata))
                md.update(StudyInstanceUID=study, SeriesInstanceUID=series_uid,
                          SOPInstanceUID=sop, InstanceNumber=number, StudyDate=date)  # fmt: skip
                typed = {**template.typed, "sop_instance_uid": sop, "instance_number": number}
                out.append(NormalizedInstance(study, series_uid, sop, typed, None, None, None, md))
    return out


def _load(store: repository.Store, instances: list[NormalizedInstance]) -> None:
    """Add ``instances``, every one of them anew (else what follows would delete less)."""
    for start in range(0, len(instances), BATCH):
        batch = instances[start : start + BATCH]
        added = store.add_normalized(batch).added
        assert added == len(batch), f"{len(batch) - added} instances were stored already"


def _by_hand(engine: Engine, where: str, params: dict[str, object]) -> Callable[[], None]:
    """One transaction deleting by hand (on a warm engine, as the store's is)."""

    def run() -> None:
        with engine.begin() as conn:
            _delete_by_hand(conn, where, params)

    return run


def _delete_by_hand(conn: Connection, where: str, params: dict[str, object]) -> None:
    for statement in BY_HAND:
        conn.execute(text(statement.format(where)), params)


def _count(url: str, table: str) -> int:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())
    finally:
        engine.dispose()


def delete_study(url: str, instances: int = 1000, rounds: int = 5) -> None:
    """Store.delete_study of a ``instances``-instance study vs DELETE FROM by hand."""
    per_series = max(1, instances // 10)
    with scratch(url, "bench_delete") as scoped, repository.connect(scoped) as store:
        _load(store, _studies(4, 10, per_series, OLD))  # the rest of the database
        target = _studies(1, 10, per_series, OLD)
        uid = target[0].study_instance_uid
        before = _count(scoped, "instance")
        store_times, hand_times = [], []
        engine = make_engine(scoped)
        by_hand = _by_hand(engine, "st.study_instance_uid = :uid", {"uid": uid})
        try:
            for _ in range(rounds):
                _load(store, target)
                store_times.append(timed(lambda: store.delete_study(uid)))
                assert _count(scoped, "instance") == before
                _load(store, target)
                hand_times.append(timed(by_hand))
                assert _count(scoped, "instance") == before
        finally:
            engine.dispose()
    took, baseline = statistics.median(store_times), statistics.median(hand_times)
    emit("delete-study", url, took, "s", baseline, took / baseline, instances=len(target),
         rounds=rounds, store_runs=[round(t, 4) for t in store_times],
         by_hand_runs=[round(t, 4) for t in hand_times])  # fmt: skip


def _per_study_by_hand(url: str) -> float:
    """Seconds to delete the old studies by hand, one transaction per study."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            uids = conn.execute(text("SELECT study_instance_uid FROM study st "
                                     "WHERE st.study_date < :cutoff ORDER BY id"),
                                {"cutoff": dt.date(2010, 1, 1)}).scalars().all()  # fmt: skip

        def run() -> None:
            for uid in uids:
                with engine.begin() as conn:
                    _delete_by_hand(conn, "st.study_instance_uid = :uid", {"uid": uid})

        return timed(run)
    finally:
        engine.dispose()


def prune_studies(url: str, studies: int = 10_000) -> None:
    """retention.prune of ``studies`` old studies vs the same rule as DELETE FROM by hand."""
    rule = PruneRule(older_than_days=365)
    old = _studies(studies, 1, 1, OLD)
    recent = _studies(max(1, studies // 10), 1, 1, dt.date.today().strftime("%Y%m%d"))
    cutoff = {"cutoff": dt.date(2010, 1, 1)}
    with scratch(url, "bench_prune") as scoped, repository.connect(scoped) as store:
        _load(store, recent)
        _load(store, old)
        result: list[int] = []
        took = timed(lambda: result.append(len(prune(store, rule).studies)))
        assert result == [studies] and _count(scoped, "study") == len(recent)
        _load(store, old)
        engine = make_engine(scoped)
        try:
            baseline = timed(_by_hand(engine, "st.study_date < :cutoff", cutoff))
        finally:
            engine.dispose()
        assert _count(scoped, "study") == len(recent)
        _load(store, old)
        per_study = _per_study_by_hand(scoped)
        assert _count(scoped, "study") == len(recent)
    emit("prune", url, took, "s", baseline, took / baseline, studies=studies,
         studies_per_s=round(studies / took, 1), by_hand_per_study_s=round(per_study, 3),
         ratio_to_by_hand_per_study=round(took / per_study, 3))  # fmt: skip

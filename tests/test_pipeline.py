"""File ingest's plumbing: ordered results from a bounded window of worker tasks, and a writer
thread whose errors reach the caller; ingest inside a caller's transaction stays in it."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pydicom
import pytest

import repository
from repository.ingest import ingest
from repository.pipeline import BackgroundWriter, ordered_results

TEST_FILES = Path(pydicom.__file__).parent / "data" / "test_files"


def test_results_come_in_order_with_a_bounded_number_of_tasks_in_flight() -> None:
    consumed: list[int] = []
    handed_out: list[int] = []

    def items() -> Iterator[int]:
        for n in range(100):
            handed_out.append(n)
            # window tasks in flight, plus the one whose results are being consumed
            assert len(handed_out) - len(consumed) <= (3 + 1) * 4
            yield n

    with ThreadPoolExecutor(2) as pool:
        for result in ordered_results(pool, lambda n: n * n, items(), chunk=4, window=3):
            consumed.append(result)
    assert consumed == [n * n for n in range(100)]


def test_a_failing_write_is_raised_in_the_callers_thread_and_stops_later_writes() -> None:
    written: list[int] = []

    def write(batch: int) -> None:
        if batch == 2:
            raise ValueError("disk full")
        written.append(batch)

    with pytest.raises(ValueError, match="disk full"), BackgroundWriter(write) as writer:
        for batch in range(10):
            writer.put(batch)
    assert written == [0, 1]


def test_ingest_inside_a_transaction_is_rolled_back_with_it(
    store: repository.Store, tmp_path: Path
) -> None:
    for name in ("CT_small.dcm", "MR_small.dcm"):
        shutil.copy(TEST_FILES / name, tmp_path / name)
    with pytest.raises(RuntimeError), store.transaction():
        report = ingest(store, [tmp_path], workers=2, batch_size=1)
        assert report.ingested == 2
        raise RuntimeError("abort")
    assert store.get_study_instance_uids() == []
    assert ingest(store, [tmp_path], workers=2, batch_size=1).ingested == 2

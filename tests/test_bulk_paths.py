"""Big batches take the bulk path (COPY on PostgreSQL, falling back to ON CONFLICT): same results,
idempotent, and safe inside transactions and savepoints."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

from repository import InvalidInputError, Store, _writes
from repository._writes import COPY_THRESHOLD

STUDY = "1.2.826.0.1.3680043.10.1011.77"


def batch(series: str, numbers: range) -> list[dict[str, Any]]:
    return [
        {
            "StudyInstanceUID": STUDY,
            "SeriesInstanceUID": series,
            "SOPInstanceUID": f"{series}.{n}",
            "SOPClassUID": "1.2.840.10008.5.1.4.1.1.2",
            "Modality": "CT",
            "InstanceNumber": n,
            "ImageType": ["ORIGINAL", "PRIMARY"],
            "PatientName": {"Alphabetic": "Bulk^Test"},
        }
        for n in numbers
    ]


def instance_count(store: Store) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM instance")).scalar_one())


def test_big_batches_are_counted_and_idempotent(store: Store) -> None:
    size = 2 * COPY_THRESHOLD
    first = store.add_instances(batch(f"{STUDY}.1", range(1, size + 1)))
    assert (first.added, first.already_present) == (size, 0)
    again = store.add_instances(batch(f"{STUDY}.1", range(1, size + 1)))
    assert (again.added, again.already_present) == (0, size)
    overlap = store.add_instances(batch(f"{STUDY}.1", range(size // 2 + 1, size + size // 2 + 1)))
    assert (overlap.added, overlap.already_present) == (size // 2, size // 2)
    assert instance_count(store) == size + size // 2
    series = store.get_series(STUDY, f"{STUDY}.1")
    assert series is not None
    assert [i.instance_number for i in series.instances] == list(range(1, size + size // 2 + 1))
    inst = series.instances[0]
    assert inst.metadata["ImageType"] == ["ORIGINAL", "PRIMARY"]
    assert inst.metadata["PatientName"] == {"Alphabetic": "Bulk^Test"}
    assert inst.image_id.endswith(f"/instances/{STUDY}.1.1/frames/1")


def test_bulk_adds_in_one_transaction_and_a_failed_add_between_them(store: Store) -> None:
    size = COPY_THRESHOLD + 10
    bad = batch(f"{STUDY}.2", range(1, size + 1))
    bad[-1]["SOPInstanceUID"] = "not a uid"
    with store.transaction():
        store.add_instances(batch(f"{STUDY}.1", range(1, size + 1)))
        with pytest.raises(InvalidInputError, match="not a uid"):
            store.add_instances(bad)
        second = store.add_instances(batch(f"{STUDY}.3", range(1, size + 1)))
        assert second.added == size
    assert instance_count(store) == 2 * size
    assert store.get_series(STUDY, f"{STUDY}.2") is None


def test_a_rolled_back_bulk_add_leaves_nothing(store: Store) -> None:
    size = COPY_THRESHOLD + 1
    with pytest.raises(RuntimeError), store.transaction():
        store.add_instances(batch(f"{STUDY}.1", range(1, size + 1)))
        raise RuntimeError("abort")
    assert instance_count(store) == 0
    assert store.add_instances(batch(f"{STUDY}.1", range(1, size + 1))).added == size


def test_rows_inserted_by_someone_else_since_the_check_are_not_duplicated(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A concurrent writer may insert rows between the conflict check and the bulk insert: the
    bulk insert then falls back to INSERT ... ON CONFLICT DO NOTHING and counts them right."""
    size = COPY_THRESHOLD + 5
    store.add_instances(batch(f"{STUDY}.1", range(1, size + 1)))
    monkeypatch.setattr(_writes, "check_conflicts", lambda *args: set())  # a stale check
    result = store.add_instances(batch(f"{STUDY}.1", range(1, size + 11)))
    assert (result.added, result.already_present) == (10, size)
    assert instance_count(store) == size + 10

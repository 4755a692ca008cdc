"""The conflict check of ``add_instances`` probes the SOP Instance UID index even on a fresh
PostgreSQL database, before any statistics exist (re-adding N known instances was O(N^2): every
chunk of 900 UIDs scanned the whole table)."""

from __future__ import annotations

import pytest
from sqlalchemy import text

import repository
from repository import migrate
from repository.engine import make_engine
from repository.lookups import explain, series_of_sop_instances

pytestmark = pytest.mark.postgresql


def _instance(n: int) -> dict[str, object]:
    return {"StudyInstanceUID": "1.2.3", "SeriesInstanceUID": f"1.2.3.{n // 100}",
            "SOPInstanceUID": f"1.2.3.4.{n}", "SOPClassUID": "1.2.840.10008.5.1.4.1.1.2",
            "ImageComments": "x" * 600}  # fmt: skip


def test_the_conflict_check_uses_the_index_before_the_first_analyze(pg_empty_url: str) -> None:
    engine = make_engine(pg_empty_url)
    migrate.upgrade(engine)
    with engine.begin() as conn:  # no statistics: as right after a first load
        conn.execute(text("ALTER TABLE instance SET (autovacuum_enabled = false)"))
    with repository.connect(pg_empty_url) as store:
        for start in range(0, 5000, 1000):
            store.add_instances([_instance(n) for n in range(start, start + 1000)])
    uids = [f"1.2.3.4.{n}" for n in range(0, 5000, 5)][:900]
    with engine.connect() as conn:
        never_analyzed = conn.execute(text(
            "SELECT last_analyze IS NULL AND last_autoanalyze IS NULL "
            "FROM pg_stat_user_tables WHERE relid = 'instance'::regclass"
        )).scalar_one()  # fmt: skip
        in_list = conn.execute(
            text("EXPLAIN SELECT series_id FROM instance WHERE sop_instance_uid = ANY(:u)"),
            {"u": uids},
        ).scalars().all()  # fmt: skip
        plan = "\n".join(explain(conn, uids))
        found = series_of_sop_instances(conn, uids)
    engine.dispose()
    assert never_analyzed
    assert any("Seq Scan on instance" in line for line in in_list), in_list  # the premise
    assert "Seq Scan on instance" not in plan, plan
    assert "Index" in plan and "instance" in plan, plan
    assert sorted(uid for _, uid in found) == sorted(uids)

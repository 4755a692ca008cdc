"""Reporting bench: cookbook reports over the views vs the same question asked of the tables.

The baseline is the fastest honest alternative: one hand-written query over the tables that
gives the same rows (checked), run through the same read-only runner, on the read benches'
database of the given size (``bench_reads_<size>``, migrated to head first).
"""

from __future__ import annotations

from functools import partial

import sqlalchemy as sa

from repository import migrate
from repository.engine import make_engine
from repository.reporting import get_report, read_only_query

from .common import best_of, emit
from .reads import prepare

RAW = {
    "studies-per-modality-per-month": """
SELECT substr(CAST(st.study_date AS TEXT), 1, 7) AS month, se.modality,
       COUNT(DISTINCT st.id) AS studies
FROM study st JOIN series_list sl ON sl.study_id = st.id
JOIN series se ON se.series_list_id = sl.id
WHERE st.study_date BETWEEN :since AND :until AND se.modality IS NOT NULL
GROUP BY substr(CAST(st.study_date AS TEXT), 1, 7), se.modality
ORDER BY month, se.modality""",
    "instances-and-frames-per-sop-class": """
SELECT i.sop_class_uid, sc.name, COUNT(*) AS instances,
       SUM(COALESCE(i.number_of_frames, CASE WHEN i.rows IS NOT NULL THEN 1 ELSE 0 END))
FROM instance i LEFT JOIN sop_class sc ON sc.uid = i.sop_class_uid
GROUP BY i.sop_class_uid, sc.name
ORDER BY instances DESC, i.sop_class_uid""",
    "largest-studies": """
SELECT st.study_instance_uid, st.patient_id, st.study_date, st.modalities_in_study,
       COUNT(DISTINCT se.series_instance_uid), COUNT(DISTINCT i.sop_instance_uid) AS n
FROM study st JOIN series_list sl ON sl.study_id = st.id
JOIN series se ON se.series_list_id = sl.id
LEFT JOIN instance i ON i.series_id = se.id
GROUP BY st.id, st.study_instance_uid, st.patient_id, st.study_date, st.modalities_in_study
ORDER BY n DESC, st.study_instance_uid
LIMIT :limit""",
}


def _rows(engine: sa.Engine, sql: str, params: dict[str, object]) -> list[tuple[object, ...]]:
    with read_only_query(engine, sql, params) as result:
        return [tuple(row) for row in result.rows]


def run(url: str, size: int) -> None:
    """Time each report against its raw-table baseline on a ``size``-instance database."""
    scoped = prepare(url, size)
    engine = make_engine(scoped)
    migrate.upgrade(engine)
    for name, raw in RAW.items():
        report = get_report(name)
        sql, params = report.sql_for(engine.dialect.name), report.bind({})
        same = _rows(engine, sql, params) == _rows(engine, raw, params)
        took = best_of(partial(_rows, engine, sql, params), repeat=3)
        baseline = best_of(partial(_rows, engine, raw, params), repeat=3)
        emit(f"report-{name}", url, took, "s", baseline, took / baseline, instances=size,
             same_rows=same)  # fmt: skip
    engine.dispose()

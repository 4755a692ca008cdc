"""Study-level derived values, recomputed from the study's series after every write.

ModalitiesInStudy, NumberOfStudyRelatedSeries and NumberOfStudyRelatedInstances are derived, so
they are right however the data arrived (a pull adding one series per call, series summaries
before or after their instances, updates that change a Modality):

- ModalitiesInStudy: the sorted modalities of the study's series (a value given by ``add_study``
  or a study query is kept only while no series has a modality);
- NumberOfStudyRelatedSeries: the study's distinct series UIDs (a series held in two data sources
  counts once);
- NumberOfStudyRelatedInstances: per series, the larger of its distinct stored instances and
  the NumberOfSeriesRelatedInstances its summary reported (instances not pulled yet count).

A study without series keeps the values it was given.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, func, select, update

from .columns import STUDY_COLUMNS, column_values
from .schema import InstanceRow, SeriesListRow, SeriesRow, StudyRow, instance_table, series_table
from .validation import as_int

CHUNK = 900


@dataclass
class _SeriesFacts:
    modality: str | None = None
    reported: int = 0
    stored: set[str] = field(default_factory=set)


def refresh_studies(conn: Connection, study_ids: Iterable[int]) -> None:
    """Recompute the derived values of ``study_ids`` and write those that changed."""
    ids = sorted(set(study_ids))
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        facts = _series_facts(conn, chunk)
        for study_id, md in conn.execute(
            select(StudyRow.id, StudyRow.metadata_)
            .where(StudyRow.id.in_(chunk))
            .order_by(StudyRow.study_instance_uid)
            .with_for_update()
        ):
            series = facts.get(study_id)
            if series:
                _write_if_changed(conn, study_id, md, _derived(md, series))


def _series_facts(conn: Connection, study_ids: list[int]) -> dict[int, dict[str, _SeriesFacts]]:
    """study id -> series UID -> modality, reported and stored instances."""
    out: dict[int, dict[str, _SeriesFacts]] = {}
    for study_id, uid, modality, md in conn.execute(
        select(SeriesListRow.study_id, SeriesRow.series_instance_uid, series_table.c.modality,
               SeriesRow.metadata_)
        .join(SeriesRow, SeriesRow.series_list_id == SeriesListRow.id)
        .where(SeriesListRow.study_id.in_(study_ids))
    ):  # fmt: skip
        facts = out.setdefault(study_id, {}).setdefault(uid, _SeriesFacts())
        facts.modality = facts.modality or modality
        reported = as_int((md or {}).get("NumberOfSeriesRelatedInstances")) or 0
        facts.reported = max(facts.reported, reported)
    for study_id, uid, sop in conn.execute(
        select(SeriesListRow.study_id, SeriesRow.series_instance_uid,
               instance_table.c.sop_instance_uid)
        .join(SeriesRow, SeriesRow.series_list_id == SeriesListRow.id)
        .join(InstanceRow, InstanceRow.series_id == SeriesRow.id)
        .where(SeriesListRow.study_id.in_(study_ids))
        .group_by(SeriesListRow.study_id, SeriesRow.series_instance_uid,
                  instance_table.c.sop_instance_uid)
    ):  # fmt: skip
        out[study_id][uid].stored.add(sop)
    return out


def _derived(md: dict[str, Any], series: dict[str, _SeriesFacts]) -> dict[str, Any]:
    modalities = sorted({f.modality for f in series.values() if f.modality})
    derived: dict[str, Any] = {
        "NumberOfStudyRelatedSeries": len(series),
        "NumberOfStudyRelatedInstances": sum(
            max(len(f.stored), f.reported) for f in series.values()
        ),
    }
    if modalities:
        derived["ModalitiesInStudy"] = modalities
    return {**md, **derived}


def _write_if_changed(conn: Connection, study_id: int, old: Any, new: dict[str, Any]) -> None:
    if new == old:
        return
    conn.execute(
        update(StudyRow)
        .where(StudyRow.id == study_id)
        .values(**column_values(STUDY_COLUMNS, new), metadata_=new, updated_at=func.now())
    )

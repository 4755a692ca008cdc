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

from .citus import by_study
from .columns import STUDY_COLUMNS, column_values
from .schema import instance_table, same_study, series_table, study_table
from .validation import as_int

CHUNK = 900


@dataclass
class _SeriesFacts:
    modality: str | None = None
    reported: int = 0
    stored: set[str] = field(default_factory=set)


def refresh_studies(conn: Connection, study_uids: Iterable[str]) -> None:
    """Recompute the derived values of the studies ``study_uids``; write those that changed."""
    for chunk in by_study(conn, sorted(set(study_uids)), str, CHUNK):
        facts = _series_facts(conn, chunk)
        for study_id, md in conn.execute(
            select(study_table.c.study_instance_uid, study_table.c.metadata)
            .where(study_table.c.study_instance_uid.in_(chunk))
            .order_by(study_table.c.study_instance_uid)
            .with_for_update()
        ):
            series = facts.get(study_id)
            if series:
                _write_if_changed(conn, study_id, md, _derived(md, series))


def _series_facts(conn: Connection, study_uids: list[str]) -> dict[str, dict[str, _SeriesFacts]]:
    """study UID -> series UID -> modality, reported and stored instances."""
    out: dict[str, dict[str, _SeriesFacts]] = {}
    for study_id, uid, modality, md in conn.execute(
        select(series_table.c.study_instance_uid, series_table.c.series_instance_uid,
               series_table.c.modality, series_table.c.metadata)
        .where(series_table.c.study_instance_uid.in_(study_uids))
    ):  # fmt: skip
        facts = out.setdefault(study_id, {}).setdefault(uid, _SeriesFacts())
        facts.modality = facts.modality or modality
        reported = as_int((md or {}).get("NumberOfSeriesRelatedInstances")) or 0
        facts.reported = max(facts.reported, reported)
    for study_id, uid, sop in conn.execute(
        select(series_table.c.study_instance_uid, series_table.c.series_instance_uid,
               instance_table.c.sop_instance_uid)
        .join(instance_table, same_study(instance_table, series_table)
              & (instance_table.c.series_id == series_table.c.id))
        .where(series_table.c.study_instance_uid.in_(study_uids))
        .group_by(series_table.c.study_instance_uid, series_table.c.series_instance_uid,
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


def _write_if_changed(conn: Connection, study_uid: str, old: Any, new: dict[str, Any]) -> None:
    if new == old:
        return
    conn.execute(
        update(study_table)
        .where(study_table.c.study_instance_uid == study_uid)
        .values(**column_values(STUDY_COLUMNS, new), metadata=new, updated_at=func.now())
    )

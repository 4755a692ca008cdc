"""The patient rule: a study has one patient, the first one stored; disagreeing files are reported.

A study's PatientID and PatientName come from the first instance (or study input) that stored
them; later instances never change them. An instance added to a study whose stored PatientID or
PatientName differs from its own (both present) is still stored, with its own metadata intact,
but the disagreement is reported: in :attr:`AddResult.patient_conflicts`, in the
INSTANCES_ADDED change payload (``patient_conflicts``) and in the ingest summary.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Connection, select

from .normalize import NormalizedInstance
from .schema import study_table
from .validation import as_text

CHUNK = 900  # bound parameters per IN list, under SQLite's default limit

PATIENT_KEYWORDS = {"PatientID": "patient_id", "PatientName": "patient_name"}
"""Attributes that must agree across a study's instances, and their study column."""


def conflict(inst: NormalizedInstance, study: Mapping[str, Any]) -> str | None:
    """Why ``inst`` disagrees with its study's stored patient (``study`` maps the study
    columns of :data:`PATIENT_KEYWORDS` to values), or None when it agrees."""
    problems = []
    for keyword, column in PATIENT_KEYWORDS.items():
        mine, kept = as_text(inst.metadata.get(keyword)), study.get(column)
        if mine and kept and mine != kept:
            problems.append(f"{keyword} {mine!r} differs from the study's {kept!r}")
    if not problems:
        return None
    return (
        f"instance {inst.sop_instance_uid} of study {inst.study_instance_uid}: "
        f"{'; '.join(problems)} (the study keeps its first patient)"
    )


def patient_conflicts(
    conn: Connection, study_ids: Mapping[str, int], instances: Iterable[NormalizedInstance]
) -> dict[str, str]:
    """SOP Instance UID -> why it disagrees with its study's patient, for ``instances``."""
    uids = sorted(study_ids)
    columns = [study_table.c[c] for c in PATIENT_KEYWORDS.values()]
    stored: dict[str, Mapping[str, Any]] = {}
    for start in range(0, len(uids), CHUNK):
        chunk = uids[start : start + CHUNK]
        for row in conn.execute(
            select(study_table.c.study_instance_uid, *columns).where(
                study_table.c.study_instance_uid.in_(chunk)
            )
        ):
            stored[row.study_instance_uid] = {c: row._mapping[c] for c in PATIENT_KEYWORDS.values()}
    found = {}
    for inst in instances:
        why = conflict(inst, stored.get(inst.study_instance_uid, {}))
        if why is not None:
            found[inst.sop_instance_uid] = why
    return found

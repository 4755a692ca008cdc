"""The add-instances command (OHIF ``addInstances``): validate and normalize the input, then
return the work that writes the parents, then the instances, and records the changes.

One way down: :meth:`repository.Store.add_instances` and ``add_normalized`` call
:func:`add_instances` / :func:`add_normalized` here, whose work the unit of work runs; rows are
written by :mod:`repository._writes`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from . import _writes, derived, events, kept_json
from .commands import InstanceInput, Work
from .errors import ConflictError, InvalidValueError
from .models import AddResult
from .normalize import NormalizedInstance, file_bulk_uri, normalize_instance
from .patients import patient_conflicts
from .pydicom_types import is_dataset
from .unit_of_work import Transaction
from .validation import check_data_source, check_flag, check_items, check_url


def add_instances(
    instances: Iterable[InstanceInput],
    data_source: str,
    made_in_client: bool,
    wado_root: str | None,
    wado_uri: str | None,
) -> Work[AddResult] | None:
    """OHIF ``addInstances``: every input validated and normalized before anything is written;
    None when there is nothing to add."""
    check_data_source(data_source)
    normalized, paths = normalize_inputs(check_items(instances, "instances"))
    return _add(normalized, data_source, made_in_client, wado_root, wado_uri, paths)


def add_normalized(
    instances: list[NormalizedInstance],
    data_source: str,
    made_in_client: bool,
    wado_root: str | None,
    wado_uri: str | None,
    paths: Mapping[str, str] | None,
    keep_json: bool = False,
) -> Work[AddResult] | None:
    """:func:`add_instances` for already normalized instances (file ingest, STOW-RS);
    ``keep_json``: keep the new instances' DICOM JSON too (:mod:`repository.kept_json`)."""
    if not all(isinstance(i, NormalizedInstance) for i in check_items(instances, "instances")):
        raise InvalidValueError("add_normalized takes NormalizedInstance objects")
    check_flag(keep_json, "keep_json")
    return _add(list(instances), data_source, made_in_client, wado_root, wado_uri, paths,
                keep_json)  # fmt: skip


def normalize_inputs(
    instances: Iterable[InstanceInput],
) -> tuple[list[NormalizedInstance], dict[str, str]]:
    """Normalize each input (naming it by file or position in errors); also return the file
    each SOP instance was read from, for ``dicomfile:`` imageIds."""
    normalized: list[NormalizedInstance] = []
    paths: dict[str, str] = {}
    for index, item in enumerate(instances):
        if isinstance(item, NormalizedInstance):
            normalized.append(item)
            continue
        filename = getattr(item, "filename", None) if is_dataset(item) else None
        bulk = file_bulk_uri(filename) if isinstance(filename, str) else None
        inst = normalize_instance(item, source=filename or f"instance #{index}", bulk=bulk)
        if isinstance(filename, str):
            paths.setdefault(inst.sop_instance_uid, filename)
        normalized.append(inst)
    return normalized, paths


@dataclass(frozen=True)
class _Batch:
    """Instances to add (one copy of each), and where they go."""

    instances: list[NormalizedInstance]
    data_source: str
    made_in_client: bool
    wado_root: str | None
    wado_uri: str | None
    paths: Mapping[str, str]

    def series_keys(self) -> dict[tuple[str, str], NormalizedInstance]:
        """(study UID, series UID) -> the first instance of that series in the batch."""
        keys: dict[tuple[str, str], NormalizedInstance] = {}
        for inst in self.instances:
            keys.setdefault((inst.study_instance_uid, inst.series_instance_uid), inst)
        return keys


@dataclass(frozen=True)
class _Parents:
    """The rows a batch's instances hang under, once created or found."""

    created_studies: list[str]
    study_id: dict[str, int]
    series_id: dict[tuple[str, str], int]
    wado_roots: dict[int, _writes.Roots]
    study_uids: list[str]


def _add(
    instances: list[NormalizedInstance],
    data_source: str,
    made_in_client: bool,
    wado_root: str | None,
    wado_uri: str | None,
    paths: Mapping[str, str] | None,
    keep_json: bool = False,
) -> Work[AddResult] | None:
    """The work of adding normalized instances; None when there is nothing to add."""
    check_data_source(data_source)
    made_in_client = check_flag(made_in_client, "made_in_client")
    wado_root, wado_uri = check_url(wado_root, "wado_root"), check_url(wado_uri, "wado_uri")
    unique = _dedupe(instances)
    if not unique:
        return None
    root = wado_root or next((i.wado_root for i in unique if i.wado_root), None)
    uri = wado_uri or next((i.wado_uri for i in unique if i.wado_uri), None)
    batch = _Batch(unique, data_source, made_in_client, root, uri, paths or {})

    def work(tx: Transaction) -> AddResult:
        parents = _upsert_parents(tx.conn, batch)
        present = _writes.check_conflicts(tx.conn, batch.instances, data_source)
        rows = [
            (parents.series_id[(i.study_instance_uid, i.series_instance_uid)], i,
             batch.paths.get(i.sop_instance_uid))
            for i in batch.instances
        ]  # fmt: skip
        inserted = _writes.insert_instances(tx.conn, rows, data_source, parents.wado_roots, present)
        if inserted:
            derived.refresh_studies(tx.conn, parents.study_uids)
        if inserted and keep_json:
            new_rows = [
                i for (series_id, i, _) in rows if (series_id, i.sop_instance_uid) in inserted
            ]
            kept_json.keep(tx.conn, new_rows, data_source)
        already = frozenset(
            i.sop_instance_uid for (series_id, i, _) in rows if (series_id, i.sop_instance_uid)
            not in inserted
        )  # fmt: skip
        new = [i for i in batch.instances if i.sop_instance_uid not in already]
        conflicts = patient_conflicts(tx.conn, parents.study_id, new)
        tx.changes.extend(_instance_changes(batch, parents, inserted, conflicts))
        return AddResult(len(inserted), len(already), already, tuple(parents.created_studies),
                         tuple(conflicts.items()))  # fmt: skip

    return work


def _upsert_parents(conn: Connection, batch: _Batch) -> _Parents:
    """Create or find the studies, series lists and series of ``batch``."""
    firsts = batch.series_keys()
    study_md: dict[str, dict[str, Any]] = {}
    for (study, _), inst in firsts.items():  # the study's first instance wins
        study_md.setdefault(study, _writes.study_metadata(inst.metadata))
    ids, created = _writes.upsert_studies(conn, study_md)
    lists = _writes.upsert_series_lists(
        conn, ids, batch.data_source, batch.wado_root, batch.wado_uri
    )
    list_of = {study: lists[study_id][0] for study, study_id in ids.items()}
    study_of = {list_id: study for study, list_id in list_of.items()}
    wanted = {(list_of[st], se): _writes.series_metadata(i.metadata)
              for (st, se), i in firsts.items()}  # fmt: skip
    series = _writes.upsert_series(conn, wanted, study_of, incoming_wins=False)
    series_id = {key: series.ids[(list_of[key[0]], key[1])] for key in firsts}
    roots = {series_id[key]: lists[ids[key[0]]][1] for key in firsts}
    return _Parents(created, ids, series_id, roots, list(ids))


def _instance_changes(
    batch: _Batch,
    parents: _Parents,
    inserted: set[tuple[int, str]],
    conflicts: Mapping[str, str],
) -> list[events.PendingChange]:
    """STUDY_ADDED per new study, then INSTANCES_ADDED per series that gained instances."""
    changes = [
        events.study_added(study, batch.data_source, batch.made_in_client)
        for study in parents.created_studies
    ]
    counts: dict[tuple[str, str], int] = {}
    disagree: dict[tuple[str, str], list[str]] = {}
    for inst in batch.instances:
        key = (inst.study_instance_uid, inst.series_instance_uid)
        if (parents.series_id[key], inst.sop_instance_uid) in inserted:
            counts[key] = counts.get(key, 0) + 1
            if inst.sop_instance_uid in conflicts:
                disagree.setdefault(key, []).append(conflicts[inst.sop_instance_uid])
    changes += [
        events.instances_added(study, series, count, batch.data_source, batch.made_in_client,
                               disagree.get((study, series), ()))
        for (study, series), count in counts.items()
    ]  # fmt: skip
    return changes


def _dedupe(instances: Iterable[NormalizedInstance]) -> list[NormalizedInstance]:
    """First copy of each SOP instance wins; one SOP UID in two series is a conflict."""
    seen: dict[str, NormalizedInstance] = {}
    for inst in instances:
        first = seen.setdefault(inst.sop_instance_uid, inst)
        if first is not inst and (first.study_instance_uid, first.series_instance_uid) != (
            inst.study_instance_uid,
            inst.series_instance_uid,
        ):
            raise ConflictError(
                f"SOPInstanceUID {inst.sop_instance_uid} appears in series "
                f"{first.series_instance_uid} and {inst.series_instance_uid} of one batch"
            )
    return list(seen.values())

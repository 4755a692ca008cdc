"""Each instance's DICOM JSON as WADO-RS metadata serves it: built here, kept in
``instance_dicom_json`` (migration 0003) by the server the first time it is served
(:mod:`repository.web.metadata_cache`), or at ingest time with ``keep_json`` (``dicom-repo
ingest --keep-json``, ``serve --keep-json`` for STOW-RS), so that even the first viewer of a
series reads kept bytes.

The bytes are the same either way: :func:`dicom_json` of the metadata text the instance is
stored with, every ``BulkDataURI`` relative to the DICOMweb root.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import Connection, select

from .engine import dumps, insert_or_skip
from .normalize import NormalizedInstance, to_dicom_json
from .schema import instance_dicom_json_table, instance_table

CHUNK = 900  # bound parameters per IN list, under SQLite's default limit


def relative_bulk(elements: dict[str, Any], base: str) -> None:
    """Point every BulkDataURI in ``elements`` (DICOM JSON, nested too) at ``base/<tag path>``."""
    for tag, element in elements.items():
        if "BulkDataURI" in element:
            element["BulkDataURI"] = f"{base}/{tag}"
        elif element.get("vr") == "SQ":
            for index, item in enumerate(element.get("Value") or ()):
                if item:
                    relative_bulk(item, f"{base}/{tag}/{index}")


def dicom_json(uids: tuple[str, str, str], text: str) -> bytes:
    """One instance's stored metadata (JSON text) as DICOM JSON, with relative bulk data URIs."""
    elements = to_dicom_json(orjson.loads(text))
    study, series, sop = uids
    relative_bulk(elements, f"studies/{study}/series/{series}/instances/{sop}/bulkdata")
    return orjson.dumps(elements)


def keep(conn: Connection, instances: Sequence[NormalizedInstance], data_source: str) -> int:
    """Keep the DICOM JSON of ``instances``, just inserted for ``data_source``, in the writer's
    transaction; returns how many rows were written (an instance with a row is left alone)."""
    ids: dict[str, int] = {}
    column = instance_table.c
    sops = [i.sop_instance_uid for i in instances]
    for start in range(0, len(sops), CHUNK):
        chunk = sops[start : start + CHUNK]
        found = conn.execute(
            select(column.id, column.sop_instance_uid).where(
                column.data_source == data_source, column.sop_instance_uid.in_(chunk)
            )
        )
        ids.update((sop, id_) for id_, sop in found)
    rows = [
        {"instance_id": ids[i.sop_instance_uid], "study_instance_uid": i.study_instance_uid,
         "generation": 0,
         "json": dicom_json((i.study_instance_uid, i.series_instance_uid, i.sop_instance_uid),
                            dumps(i.metadata)).decode()}
        for i in instances if i.sop_instance_uid in ids
    ]  # fmt: skip
    if not rows:
        return 0
    stmt = insert_or_skip(conn, instance_dicom_json_table).on_conflict_do_nothing(
        index_elements=["instance_id", "study_instance_uid"]
    )
    return int(conn.execute(stmt, rows).rowcount or 0)

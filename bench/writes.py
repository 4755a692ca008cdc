"""add-instances: normalized instances through the store vs the raw driver writing the same rows."""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import orjson
import psycopg
from sqlalchemy.engine import make_url

import repository
from repository.columns import INSTANCE_COLUMNS
from repository.image_id import wadors_image_id
from repository.normalize import NormalizedInstance

from .common import backend, emit, scratch, timed
from .corpus import normalized_instances

BATCH = 2000
"""Instances per ``add_instances`` call (a few series at a time, as data sources add them)."""


Grouped = dict[str, dict[str, list[NormalizedInstance]]]


def _rows(instances: Sequence[NormalizedInstance]) -> Grouped:
    studies: Grouped = defaultdict(lambda: defaultdict(list))
    for inst in instances:
        studies[inst.study_instance_uid][inst.series_instance_uid].append(inst)
    return studies


def _instance_row(series_id: int, inst: NormalizedInstance) -> tuple[Any, ...]:
    image_id = inst.image_id or wadors_image_id(
        None, inst.study_instance_uid, inst.series_instance_uid, inst.sop_instance_uid
    )
    typed = [inst.typed[c.name] for c in INSTANCE_COLUMNS]
    return (series_id, *typed, image_id, "default", orjson.dumps(inst.metadata).decode())


_INSTANCE_NAMES = ["series_id", *(c.name for c in INSTANCE_COLUMNS), "image_id", "data_source",
                   "metadata"]  # fmt: skip
_INSTANCE_COLUMNS = ", ".join(_INSTANCE_NAMES)
_PLACEHOLDERS = ", ".join("?" * len(_INSTANCE_NAMES))
_PLACEHOLDERS = ", ".join("?" * len(_INSTANCE_NAMES))
"""The instance columns the raw writers fill, in :func:`_instance_row`'s order."""


def raw_postgres(url: str, instances: Sequence[NormalizedInstance]) -> None:
    """psycopg: parent rows with executemany, instance rows with COPY."""
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        rows: list[tuple[Any, ...]] = []
        for study_uid, series in _rows(instances).items():
            first = next(iter(series.values()))[0].metadata
            cur.execute(
                "INSERT INTO study (study_instance_uid, patient_id, metadata) "
                "VALUES (%s, %s, %s) RETURNING id",
                (study_uid, first.get("PatientID"), orjson.dumps({}).decode()),
            )
            study_id = cur.fetchone()[0]  # type: ignore[index]
            cur.execute(
                "INSERT INTO series_list (study_id, data_source) VALUES (%s, 'default') "
                "RETURNING id",
                (study_id,),
            )
            list_id = cur.fetchone()[0]  # type: ignore[index]
            for series_uid, members in series.items():
                cur.execute(
                    "INSERT INTO series (series_list_id, series_instance_uid, modality, "
                    "metadata) VALUES (%s, %s, %s, %s) RETURNING id",
                    (list_id, series_uid, members[0].metadata.get("Modality"), "{}"),
                )
                series_id = cur.fetchone()[0]  # type: ignore[index]
                rows.extend(_instance_row(series_id, inst) for inst in members)
        with cur.copy(f"COPY instance ({_INSTANCE_COLUMNS}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)


def raw_sqlite(url: str, instances: Sequence[NormalizedInstance]) -> None:
    """sqlite3: executemany, one transaction per ``BATCH`` instances (on a disk as slow as
    this machine's, one transaction of 100k rows is slower: the WAL grows to gigabytes)."""
    conn = sqlite3.connect(make_url(url).database or "")
    try:
        cur = conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")  # the store's durability setting
        cur.execute("BEGIN")
        rows: list[tuple[Any, ...]] = []
        for study_uid, series in _rows(instances).items():
            first = next(iter(series.values()))[0].metadata
            cur.execute(
                "INSERT INTO study (study_instance_uid, patient_id, metadata) VALUES (?, ?, '{}')",
                (study_uid, first.get("PatientID")),
            )
            cur.execute(
                "INSERT INTO series_list (study_id, data_source) VALUES (?, 'default')",
                (cur.lastrowid,),
            )
            list_id = cur.lastrowid
            for series_uid, members in series.items():
                cur.execute(
                    "INSERT INTO series (series_list_id, series_instance_uid, modality, "
                    "metadata) VALUES (?, ?, ?, '{}')",
                    (list_id, series_uid, members[0].metadata.get("Modality")),
                )
                series_id = cur.lastrowid or 0
                rows.extend(_instance_row(series_id, inst) for inst in members)
        for start in range(0, len(rows), BATCH):  # one transaction per batch, as the store
            cur.executemany(
                f"INSERT INTO instance ({_INSTANCE_COLUMNS}) VALUES ({_PLACEHOLDERS})",
                rows[start : start + BATCH],
            )
            conn.commit()
            cur.execute("BEGIN")
        conn.commit()
    finally:
        conn.close()


def store_add(url: str, instances: Sequence[NormalizedInstance]) -> None:
    """The store's ``add_instances``, ``BATCH`` instances per call."""
    with repository.connect(url) as store:
        for start in range(0, len(instances), BATCH):
            store.add_instances(instances[start : start + BATCH])


def run(url: str, size: int) -> dict[str, Any]:
    """Time the store and the raw driver writing the same ``size`` instances to fresh tables."""
    instances = list(normalized_instances(size, seed=2))
    raw = raw_postgres if backend(url) == "postgresql" else raw_sqlite
    with scratch(url, "bench_raw") as scoped:
        baseline = timed(lambda: raw(scoped, instances))
    with scratch(url, "bench_add") as scoped:
        took = timed(lambda: store_add(scoped, instances))
    return emit(
        "add-instances",
        url,
        size / took,
        "instances/s",
        size / baseline,
        baseline / took,
        instances=size,
        batch=BATCH,
    )

"""Each instance's WADO-RS metadata (its DICOM JSON), built once and kept in the database.

Building DICOM JSON from the stored metadata (decode, convert element by element, encode) took
0.2 to 0.5 s for a series of 1000 CT instances; reading the bytes back, 20 to 50 ms. The first time
an instance's metadata is served, the server keeps the bytes it built in ``instance_dicom_json``
(migration 0003); later requests, from any worker or server on the same database, read them.

- Built by :mod:`repository.kept_json`, which also keeps it at ingest time when asked to.
- Host-independent: every ``BulkDataURI`` is kept relative to the DICOMweb root
  (``studies/<study>/series/<series>/instances/<sop>/bulkdata/<tag path>``);
  :func:`with_root` prefixes the root the request came to, a bytes replace on the way out.
- Never stale: an UPDATE of ``instance.metadata`` (whatever makes it) fires a trigger that turns
  the row into a tombstone (``json`` NULL, ``generation`` + 1) in the writer's transaction. A
  server reads an instance's metadata and its row's generation in one statement (one snapshot),
  and fills the row only if it still has that generation and no JSON (:func:`fill`): a fill
  built from metadata that was updated meanwhile is dropped, and the next request builds again.
- Never another instance's: the fill of an instance deleted meanwhile is dropped. On
  PostgreSQL its id is never handed out again (a sequence), so the row fails its foreign key; on
  SQLite the next instance stored may get the deleted largest id (rowid reuse), so a fill there
  is written only if the instance under that id still has the metadata it was built from.
- Best effort: the fill runs after the response was sent, in its own short transaction. A
  read-only server (``--read-only``), a role without INSERT, or a busy database only means the
  JSON is built again next time; the answer is the same either way.
"""

from __future__ import annotations

import logging
from collections.abc import Generator, Sequence
from functools import lru_cache
from itertools import islice
from typing import Any

import orjson
from sqlalchemy import (
    Connection,
    Dialect,
    Engine,
    Executable,
    Select,
    bindparam,
    case,
    select,
    text,
)
from sqlalchemy.dialects import postgresql

from .._reads import json_text
from ..db_errors import translate_errors
from ..errors import RepositoryError
from ..schema import (
    INSTANCE_IN_SERIES,
    instance_dicom_json_table,
    instance_table,
    same_study,
    series_list_table,
    series_table,
    study_table,
)

log = logging.getLogger("repository.web.metadata_cache")

BULK_KEY = b'"BulkDataURI":"'
"""How a BulkDataURI starts in compact JSON: a key followed by a string can be nothing else (a
quote inside a JSON string is escaped, and only a key is followed by a colon)."""

Fill = tuple[int, str, int, bytes, str | None]
"""An instance id, its StudyInstanceUID, the generation of its row when its metadata was read
(0: no row), its JSON, and the metadata text it was built from (SQLite checks it; None
elsewhere)."""


def with_root(data: bytes, root: str) -> bytes:
    """``data`` (DICOM JSON) with the DICOMweb ``root`` put before every BulkDataURI."""
    return data.replace(BULK_KEY, BULK_KEY + orjson.dumps(root + "/")[1:-1])


LEVELS = ("study", "series", "instance")
"""The bound parameters of :func:`answer_statement`: the UIDs of a study, series and instance."""


def answer_statement(levels: int, with_json: bool) -> Select[Any]:
    """Id, study, series and SOP Instance UID of the instances under the first ``levels`` of
    :data:`LEVELS` (a study, a series or an instance), in answer order; ``with_json``: then
    generation and JSON of the kept row, and the stored metadata text where no JSON is kept
    (one statement, one snapshot)."""
    cached = instance_dicom_json_table.c
    columns: list[Any] = [
        instance_table.c.id,
        study_table.c.study_instance_uid,
        series_table.c.series_instance_uid,
        instance_table.c.sop_instance_uid,
    ]
    if with_json:
        metadata = json_text(instance_table.c.metadata)
        columns += [cached.generation, cached.json, case((cached.json.is_(None), metadata))]
    stmt = (
        select(*columns)
        .select_from(instance_table)
        .join(series_table, INSTANCE_IN_SERIES)
        .join(series_list_table, same_study(series_list_table, series_table)
              & (series_list_table.c.id == series_table.c.series_list_id))
        .join(study_table, same_study(study_table, series_list_table)
              & (study_table.c.id == series_list_table.c.study_id))
        .where(instance_table.c.study_instance_uid == bindparam("study"))
    )  # fmt: skip
    if with_json:
        stmt = stmt.outerjoin(
            instance_dicom_json_table,
            same_study(instance_dicom_json_table, instance_table)
            & (cached.instance_id == instance_table.c.id),
        )
    if levels > 1:
        stmt = stmt.where(series_table.c.series_instance_uid == bindparam("series"))
    if levels > 2:
        stmt = stmt.where(instance_table.c.sop_instance_uid == bindparam("instance"))
    return stmt.order_by(
        series_table.c.id, instance_table.c.instance_number.is_(None),
        instance_table.c.instance_number, instance_table.c.sop_instance_uid,
    )  # fmt: skip


Row = tuple[int, str, str, str, int | None, bytes | str | None, str | None]
"""An instance of an answer: id, study, series and SOP Instance UID, its row's generation and
JSON (None: no row, or a tombstone), and its stored metadata as JSON text (None when JSON is
kept). The JSON comes as bytes from SQLite, as text from PostgreSQL (decoding it is cheap)."""


def answer_rows(conn: Connection, uids: Sequence[str], size: int) -> Generator[list[Row]]:
    """The instances under ``uids`` with their kept JSON, in answer order, ``size`` at a time.

    Through the driver's own cursor: the rows are few and large, and SQLAlchemy's handling of
    them took as long as reading them. PostgreSQL streams one query (it sorts pointers to the
    JSON, not the JSON). SQLite sorts whole rows, JSON included, which took longer than reading
    it: the instances are listed first, and their JSON read by id, ``size`` at a time, all in
    one read transaction.
    """
    params = dict(zip(LEVELS, uids, strict=False))
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        if conn.dialect.name == "postgresql":
            sql = _compiled(conn.dialect, len(uids))
            rows = cursor.stream(sql, params)  # single-row mode: works with any libpq
            try:
                while batch := list(islice(rows, size)):
                    yield batch
            finally:
                rows.close()  # cancels the query if it was not read to the end
            return
        instances = conn.execute(answer_statement(len(uids), with_json=False), params).all()
        for start in range(0, len(instances), size):
            listed = instances[start : start + size]
            cursor.execute(SQLITE_READ.format(", ".join("?" * len(listed))), [i[0] for i in listed])
            found = {row[0]: row[1:] for row in cursor.fetchall()}
            yield [(*i, *found[i[0]]) for i in listed if i[0] in found]  # else: deleted since
    finally:
        cursor.close()


@lru_cache(maxsize=16)
def _compiled(dialect: Dialect, levels: int) -> str:
    """:func:`answer_statement` with JSON as SQL for ``dialect`` (compiling took a millisecond)."""
    return str(answer_statement(levels, with_json=True).compile(dialect=dialect))


SQLITE_READ = (
    "SELECT i.id, c.generation, CAST(c.json AS BLOB), CASE WHEN c.json IS NULL THEN i.metadata "
    "END FROM instance i LEFT JOIN instance_dicom_json c ON c.instance_id = i.id "
    "WHERE i.id IN ({})"
)
"""SQLite: of the instances ``ids``, what :data:`Row` has after the UIDs (one statement)."""


SQLITE_FILL = text(
    "INSERT INTO instance_dicom_json (instance_id, study_instance_uid, generation, json) "
    "SELECT :instance_id, :study_instance_uid, :generation, :json WHERE EXISTS (SELECT 1 "
    "FROM instance WHERE id = :instance_id AND metadata = :read) "
    "ON CONFLICT (instance_id, study_instance_uid) DO UPDATE SET json = excluded.json "
    "WHERE instance_dicom_json.generation = excluded.generation "
    "AND instance_dicom_json.json IS NULL"
)
"""SQLite: keep a fill only if the instance under its id still has the metadata it was built
from (a deleted instance's id may be handed to the next one stored)."""


def fill(engine: Engine, fills: Sequence[Fill]) -> bool:
    """Keep the JSON built for ``fills`` where no update came since it was read; True if written.

    Rows are written in instance id order (the order an update of a series takes its locks in).
    A failure is logged and otherwise ignored: the metadata was served, and is built next time.
    """
    if not fills:
        return True
    stmt: Executable = SQLITE_FILL
    if engine.dialect.name == "postgresql":
        table = instance_dicom_json_table
        insert = postgresql.insert(table)
        stmt = insert.on_conflict_do_update(
            index_elements=[table.c.instance_id, table.c.study_instance_uid],
            set_={"json": insert.excluded.json},
            where=(table.c.generation == insert.excluded.generation) & table.c.json.is_(None),
        )
    params = [
        {
            "instance_id": id_,
            "study_instance_uid": study,
            "generation": generation,
            "json": data.decode(),
            "read": read,
        }
        for id_, study, generation, data, read in sorted(fills, key=lambda f: f[0])
    ]
    try:
        with (
            translate_errors("cannot keep DICOM JSON"),
            engine.connect() as conn,
            conn.execution_options(dicom_repo_write=True).begin(),
        ):
            conn.execute(stmt, params)
    except RepositoryError as error:
        log.warning("DICOM JSON of %d instances not kept (built again next time): %s",
                    len(fills), error)  # fmt: skip
        return False
    return True

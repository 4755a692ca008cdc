"""The repository on Citus: which tables are distributed how, and :func:`distribute`.

Every table of a study (``study``, ``series_list``, ``series``, ``instance``,
``instance_dicom_json``) is distributed by ``study_instance_uid`` and co-located, so one
study's rows share one shard and a query that names the study runs on that shard alone (a
router query); the joins of the store's SQL include ``study_instance_uid`` (see
:func:`repository.schema.same_study`). ``sop_instance`` is distributed by the SOP Instance UID
(:mod:`repository.sop_registry`), ``sop_class`` is a reference table (a copy on every node), and
the change log (``change``, ``change_compaction``) stays a local table of the coordinator: one
sequence, one advisory lock, so seq order is commit order as on plain PostgreSQL.

Citus refuses a primary key without the distribution column: :func:`distribute` turns the
``id`` primary keys of the four tables that have one into ``PRIMARY KEY (id,
study_instance_uid)`` (still named ``pk_<table>``). That key takes the place of their unique,
not-null ``(id, study_instance_uid)`` constraint of migration 0006, so there is one index, not
two; the foreign keys that reference it are dropped first and made again from their own
definitions, in the same transaction.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, inspect, text

from .db_errors import driver_errors
from .errors import RepositoryError

log = logging.getLogger("repository.citus")

STUDY_TABLES = ("study", "series_list", "series", "instance", "instance_dicom_json")
"""Distributed by ``study_instance_uid``, co-located with ``study``; parents first."""

ID_KEYED = ("study", "series_list", "series", "instance")
"""Tables whose ``id`` primary key gives way to ``PRIMARY KEY (id, study_instance_uid)``."""

_CACHE_KEY = "dicom_repo_citus"


def has_citus(conn: Connection) -> bool:
    """True if the database has the ``citus`` extension."""
    if conn.dialect.name != "postgresql":
        return False
    found = conn.execute(text("SELECT 1 FROM pg_extension WHERE extname = 'citus'")).first()
    return found is not None


def is_distributed(conn: Connection) -> bool:
    """True if the schema ``conn`` works in is distributed (cached per connection)."""
    info = conn.connection.info
    if _CACHE_KEY not in info:
        info[_CACHE_KEY] = has_citus(conn) and bool(
            conn.execute(
                text("SELECT EXISTS (SELECT 1 FROM pg_dist_partition "
                     "WHERE logicalrelid = to_regclass('study'))")
            ).scalar()
        )  # fmt: skip
    return bool(info[_CACHE_KEY])


def recover_prepared(conn: Connection) -> None:
    """Finish now the two-phase transactions a lost commit may have left on the workers.

    A coordinator backend that dies in ``COMMIT`` after the workers ran ``PREPARE TRANSACTION``
    leaves them prepared, holding the row locks of their writes, until Citus's maintenance
    daemon recovers them (every ``citus.recover_2pc_interval``, 1 min by default): the retried
    transaction, which writes the same rows, would wait that long. ``conn`` (new, no
    transaction begun) runs ``recover_prepared_transactions()`` on Citus and commits; without
    the right to run it (superuser, or granted EXECUTE) the daemon's recovery is waited for.
    """
    try:
        if is_distributed(conn):
            recovered = conn.execute(text("SELECT recover_prepared_transactions()")).scalar()
            log.info("recovered %s prepared transactions after a lost commit", recovered)
        conn.commit()
    except driver_errors() as error:  # best effort: the retry goes on either way
        log.info("could not recover prepared transactions: %s", error)
        with contextlib.suppress(*driver_errors()):
            conn.rollback()


def by_study(conn: Connection, keys: Iterable[Any], study_of: Any, size: int) -> list[list[Any]]:
    """``keys`` in chunks of ``size``, or one chunk per study on Citus, where ``SELECT ... FOR
    UPDATE`` must name a single shard (``study_of(key)`` is a key's StudyInstanceUID)."""
    ordered = list(keys)
    if not is_distributed(conn):
        return [ordered[start : start + size] for start in range(0, len(ordered), size)]
    groups: dict[str, list[Any]] = {}
    for key in ordered:
        groups.setdefault(study_of(key), []).append(key)
    return [groups[study] for study in sorted(groups)]


_REFERENCING = """
SELECT quote_ident(n.nspname) || '.' || quote_ident(t.relname), quote_ident(c.conname),
       pg_get_constraintdef(c.oid)
FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
WHERE c.contype = 'f' AND c.confrelid = ANY(CAST(:tables AS regclass[]))
ORDER BY c.oid
"""


def _primary_keys_with_study_uid(conn: Connection) -> None:
    """Give each table of :data:`ID_KEYED` ``PRIMARY KEY (id, study_instance_uid)`` in place
    of ``PRIMARY KEY (id)`` and of the unique ``(id, study_instance_uid)`` constraint; the
    foreign keys that reference these tables are dropped for the swap and made again as they
    were (they name the columns, not the constraint)."""
    tables = list(ID_KEYED)
    referencing = conn.execute(text(_REFERENCING), {"tables": tables}).all()
    for table, name, _ in referencing:
        conn.execute(text(f"ALTER TABLE {table} DROP CONSTRAINT {name}"))
    for table in ID_KEYED:
        conn.execute(text(
            f'ALTER TABLE "{table}" DROP CONSTRAINT "pk_{table}", '
            f'DROP CONSTRAINT "uq_{table}_id_study_instance_uid", '
            f'ADD CONSTRAINT "pk_{table}" PRIMARY KEY (id, study_instance_uid)'
        ))  # fmt: skip
    for table, name, definition in referencing:
        conn.execute(text(f"ALTER TABLE {table} ADD CONSTRAINT {name} {definition}"))


def replaced_by_primary_keys(conn: Connection) -> set[str]:
    """Names of the unique ``(id, study_instance_uid)`` constraints that :func:`distribute`
    replaced by a primary key of the same columns (none unless the schema is distributed):
    ``dicom-repo db check`` does not count them as missing."""
    if not is_distributed(conn):
        return set()
    inspector = inspect(conn)
    return {
        f"uq_{table}_id_study_instance_uid"
        for table in ID_KEYED
        if inspector.get_pk_constraint(table)["constrained_columns"] == ["id", "study_instance_uid"]
    }


def distribute(conn: Connection, shard_count: int | None = None) -> list[str]:
    """Distribute the schema ``conn`` works in over the Citus cluster; what was done, in order.

    Run it once, after ``dicom-repo db upgrade`` and before the tables fill (Citus copies rows
    that are there already). Raises RepositoryError without the ``citus`` extension.
    """
    if not has_citus(conn):
        raise RepositoryError("the database has no citus extension (CREATE EXTENSION citus)")
    if is_distributed(conn):
        return []
    done = ["reference table sop_class"]
    # The instance cache's trigger (migration 0003) runs on each shard of ``instance`` and writes
    # the co-located shard of ``instance_dicom_json``: same study, same node.
    conn.execute(text("SET LOCAL citus.enable_unsafe_triggers = on"))
    conn.execute(text("SELECT create_reference_table('sop_class')"))
    _primary_keys_with_study_uid(conn)
    shards = "" if shard_count is None else f", shard_count => {int(shard_count)}"
    for table in STUDY_TABLES:
        colocate = ", colocate_with => 'study'" if table != "study" else shards
        conn.execute(
            text(f"SELECT create_distributed_table('{table}', 'study_instance_uid'{colocate})")
        )
        done.append(f"{table} distributed by study_instance_uid")
    conn.execute(
        text(f"SELECT create_distributed_table('sop_instance', 'sop_instance_uid', "
             f"colocate_with => 'none'{shards})")
    )  # fmt: skip
    done.append("sop_instance distributed by sop_instance_uid")
    conn.connection.info.pop(_CACHE_KEY, None)
    return done

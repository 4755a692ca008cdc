"""The change log: appending changes, reading them by seq, and the names writers and followers
share. Rows are built from :class:`~repository.events.PendingChange` (made by the events
module's constructors) and read back with :func:`~repository.events.parse_change`.

Writers append to the ``change`` table at the very end of their transaction
(:func:`record_changes`). On PostgreSQL they first take a transaction-scoped advisory lock,
:func:`append_lock_key`, so seq numbers are handed out in commit order: a reader that has seen
seq N has seen every committed change below N, and a follower reading ``seq > last_seen`` never
skips one. On SQLite writers are serialized by the database (``BEGIN IMMEDIATE``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from sqlalchemy import Connection, func, insert, select

from .errors import InvalidValueError
from .events import Event, PendingChange, parse_change
from .schema import ChangeRow

APPEND_LOCK_KEY = 0x6469636F6D5F7271  # "dicom_rq"
"""The advisory lock key of change appends when no schema is known (see :func:`append_lock_key`)."""

CHANNEL_PREFIX = "dicom_repo_changes:"
MAX_IDENTIFIER = 63  # NAMEDATALEN - 1: longer LISTEN channel names are truncated or refused


def notify_channel(schema: str | None) -> str:
    """The LISTEN/NOTIFY channel for the change log of ``schema`` (PostgreSQL).

    Scoped to the schema, so that databases with several schemas (for example one per test)
    do not wake each other's followers. Long schema names are replaced by a digest.
    """
    name = CHANNEL_PREFIX + (schema or "")
    if len(name.encode()) > MAX_IDENTIFIER:
        name = CHANNEL_PREFIX + hashlib.sha1((schema or "").encode()).hexdigest()[:32]
    return name


def append_lock_key(channel: str | None) -> int:
    """The advisory lock (a bigint) every PostgreSQL writer of the schema whose channel is
    ``channel`` holds from its change append to its commit.

    Advisory locks are database-wide; deriving the key from the schema keeps the writers of
    different schemas in one database from queueing for each other.
    """
    if not channel:
        return APPEND_LOCK_KEY
    return int.from_bytes(hashlib.sha1(channel.encode()).digest()[:8], "big", signed=True)


def current_channel(conn: Connection) -> str:
    """:func:`notify_channel` of the schema ``conn`` writes to (its ``current_schema()``)."""
    schema = conn.execute(select(func.current_schema())).scalar()
    return notify_channel(schema)


def max_seq(conn: Connection) -> int:
    """The newest committed seq (0 for an empty change log)."""
    return int(conn.execute(select(func.coalesce(func.max(ChangeRow.seq), 0))).scalar_one())


def record_changes(
    conn: Connection, changes: Sequence[PendingChange], channel: str | None = None
) -> list[Event]:
    """Append ``changes`` to the change log; return them as events with their seq numbers.

    Call it last, just before commit. On PostgreSQL it first takes the change-log advisory lock
    of the schema whose NOTIFY channel is ``channel`` (held until commit), so seq order is
    commit order, and queues a NOTIFY on ``channel`` (sent only if the transaction commits).
    """
    if not changes:
        return []
    postgres = conn.dialect.name == "postgresql"
    if postgres:
        conn.execute(select(func.pg_advisory_xact_lock(append_lock_key(channel))))
    rows = [
        {"kind": c.kind.value, "study_instance_uid": c.study_instance_uid,
         "series_instance_uid": c.series_instance_uid, "data_source": c.data_source,
         "made_in_client": c.made_in_client, "payload": dict(c.payload)}
        for c in changes
    ]  # fmt: skip
    stmt = insert(ChangeRow).returning(ChangeRow.seq, sort_by_parameter_order=True)
    seqs = [seq for (seq,) in conn.execute(stmt, rows)]
    if postgres and channel:
        conn.execute(select(func.pg_notify(channel, str(max(seqs)))))
    return [change.committed(seq) for change, seq in zip(changes, seqs, strict=True)]


def check_page(since: object, limit: object) -> None:
    """Raise InvalidValueError unless ``since`` is a seq (int >= 0) and ``limit`` an int >= 1."""
    if isinstance(since, bool) or not isinstance(since, int) or since < 0:
        raise InvalidValueError(f"since must be a seq number (an int >= 0), not {since!r}")
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise InvalidValueError(f"limit must be a positive int, not {limit!r}")


def read_changes(conn: Connection, after: int, limit: int) -> list[Event]:
    """Committed changes with ``seq > after``, oldest first, at most ``limit`` of them.

    Kinds this version does not know are read as events with a plain-string kind.
    """
    rows = conn.execute(
        select(ChangeRow.seq, ChangeRow.kind, ChangeRow.study_instance_uid,
               ChangeRow.series_instance_uid, ChangeRow.data_source, ChangeRow.made_in_client,
               ChangeRow.payload)
        .where(ChangeRow.seq > after)
        .order_by(ChangeRow.seq)
        .limit(limit)
    )  # fmt: skip
    return [parse_change(*row) for row in rows]

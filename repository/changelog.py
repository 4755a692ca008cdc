"""The change log: appending changes, reading them by seq, and the names writers and followers
share. Rows are built from :class:`~repository.events.PendingChange` (made by the events
module's constructors) and read back with :func:`~repository.events.parse_change`.

Writers append to the ``change`` table at the very end of their transaction
(:func:`record_changes`). On PostgreSQL they first take a transaction-scoped advisory lock,
:func:`append_lock_key`, so seq numbers are handed out in commit order: a reader that has seen
seq N has seen every committed change below N, and a follower reading ``seq > last_seen`` never
skips one. On SQLite writers are serialized by the database (``BEGIN IMMEDIATE``).

Compaction (:func:`compact`) deletes old changes and records the largest seq it removed in
``change_compaction``: the horizon. A reader whose position is below it gets
:class:`~repository.errors.FeedGapError` (:func:`check_position`), never a silent gap. The newest
change is always kept, so seqs never start again (SQLite reuses the largest rowid + 1).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, delete, func, insert, select

from .errors import FeedGapError, InvalidValueError
from .events import Event, PendingChange, parse_change
from .schema import change_compaction_table, change_table

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
    return int(conn.execute(select(func.coalesce(func.max(change_table.c.seq), 0))).scalar_one())


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
    stmt = insert(change_table).returning(change_table.c.seq, sort_by_parameter_order=True)
    seqs = [seq for (seq,) in conn.execute(stmt, rows)]
    if postgres and channel:
        conn.execute(select(func.pg_notify(channel, str(max(seqs)))))
    return [change.committed(seq) for change, seq in zip(changes, seqs, strict=True)]


SEQ_MAX = 2**63 - 1
"""The largest seq (a 64-bit column)."""


def check_page(since: object, limit: object) -> None:
    """Raise InvalidValueError unless ``since`` is a seq (an int from 0 to :data:`SEQ_MAX`) and
    ``limit`` an int from 1 to :data:`SEQ_MAX`."""
    if isinstance(since, bool) or not isinstance(since, int) or not 0 <= since <= SEQ_MAX:
        raise InvalidValueError(f"since must be a seq number (0 to {SEQ_MAX}), not {since!r}")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= SEQ_MAX:
        raise InvalidValueError(f"limit must be an int from 1 to {SEQ_MAX}, not {limit!r}")


def read_changes(conn: Connection, after: int, limit: int) -> list[Event]:
    """Committed changes with ``seq > after``, oldest first, at most ``limit`` of them.

    Kinds this version does not know are read as events with a plain-string kind.
    """
    rows = conn.execute(
        select(change_table.c.seq, change_table.c.kind, change_table.c.study_instance_uid,
               change_table.c.series_instance_uid, change_table.c.data_source,
               change_table.c.made_in_client, change_table.c.payload)
        .where(change_table.c.seq > after)
        .order_by(change_table.c.seq)
        .limit(limit)
    )  # fmt: skip
    return [parse_change(*row) for row in rows]


def horizon(conn: Connection) -> int:
    """The largest seq removed by compaction (0 if the change log was never compacted)."""
    stmt = select(func.coalesce(func.max(change_compaction_table.c.through_seq), 0))
    return int(conn.execute(stmt).scalar_one())


def read_page(conn: Connection, since: object, limit: object) -> list[Event]:
    """``Store.changes``: the page after ``since`` (checked), :class:`FeedGapError` if changes
    after it were compacted away."""
    check_page(since, limit)
    assert isinstance(since, int) and isinstance(limit, int)
    check_position(conn, since)
    return read_changes(conn, since, limit)


def check_position(conn: Connection, since: int) -> None:
    """Raise :class:`FeedGapError` if changes after ``since`` were compacted away."""
    through = horizon(conn)
    if since < through:
        raise FeedGapError(since, through, max_seq(conn))


@dataclass(frozen=True)
class Compaction:
    """What :func:`compact` did: ``removed`` changes, every one with ``seq <= through_seq``."""

    removed: int
    through_seq: int


def compact(
    conn: Connection,
    *,
    before_seq: int | None = None,
    older_than: dt.datetime | None = None,
    channel: str | None = None,
) -> Compaction:
    """Delete the changes with ``seq < before_seq``, or those up to the newest committed before
    ``older_than`` (one of the two), always keeping the newest change; record the new horizon.

    On PostgreSQL it holds the change-log append lock (as writers do) until commit, so the
    newest seq it sees cannot be overtaken by a writer still to commit a smaller one.
    """
    if (before_seq is None) == (older_than is None):
        raise InvalidValueError("compact needs exactly one of before_seq and older_than")
    if conn.dialect.name == "postgresql":
        conn.execute(select(func.pg_advisory_xact_lock(append_lock_key(channel))))
    if before_seq is not None:
        wanted = before_seq - 1
    else:
        aged = select(func.coalesce(func.max(change_table.c.seq), 0))
        wanted = int(conn.execute(aged.where(change_table.c.created_at < older_than)).scalar_one())
    through = min(wanted, max_seq(conn) - 1)
    done = horizon(conn)
    if through <= done:
        return Compaction(0, done)
    removed = conn.execute(delete(change_table).where(change_table.c.seq <= through)).rowcount
    conn.execute(insert(change_compaction_table).values(through_seq=through, removed=removed))
    return Compaction(int(removed), through)

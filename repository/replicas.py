"""Reads from hot standbys: which server a read goes to, and reading your own writes.

A store opened with read URLs (``connect(url, read_urls=[...])``, ``--read-db``,
``$DICOM_REPO_READ_URLS``) sends every write to its primary URL and each read outside a write
transaction to a standby that is

- up (a standby that cannot be reached is skipped for :data:`RETRY_DOWN_SECONDS`),
- not lagging more than ``max_lag`` seconds behind (``pg_last_xact_replay_timestamp()``; a
  standby that has replayed all it received from a streaming primary has no lag), and
- caught up with this process's own last commit: after each write transaction the store notes
  the primary's WAL position (``pg_current_wal_lsn()``), and a read waits up to
  :data:`CATCH_UP_SECONDS` for the standby's ``pg_last_wal_replay_lsn()`` to pass it;

else to the primary. A standby's state is probed at most every :data:`PROBE_SECONDS`.
Other processes' writes are seen at once only with synchronous replication: write transactions
of a store with standbys run with ``synchronous_commit = remote_apply``, which makes the commit
wait until the standbys named in the primary's ``synchronous_standby_names`` have applied it
(README, "Scaling out").
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, text

from .validation import strip_credentials

log = logging.getLogger("repository.replicas")

DEFAULT_MAX_LAG = 5.0
"""Seconds a standby may lag behind the primary and still be read from."""
PROBE_SECONDS = 1.0
"""How long a standby's probed state is trusted."""
RETRY_DOWN_SECONDS = 5.0
"""How long a standby that could not be reached is left alone."""
CATCH_UP_SECONDS = 0.5
"""How long a read waits for a standby to replay this process's last commit."""
CATCH_UP_STEP = 0.005

_PROBE = text(
    "SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() "
    "ELSE pg_current_wal_lsn() END - '0/0'::pg_lsn, "
    "CASE WHEN NOT pg_is_in_recovery() THEN 0 "
    "WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() AND EXISTS "
    "(SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming') THEN 0 "
    "ELSE coalesce(extract(epoch FROM now() - pg_last_xact_replay_timestamp()), 'Infinity') END"
)
"""A standby's replayed WAL position (bytes) and its lag (seconds); a primary's position."""
_REPLAYED = text("SELECT coalesce(pg_last_wal_replay_lsn(), pg_current_wal_lsn()) - '0/0'::pg_lsn")
_WRITTEN = text("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")
SYNCHRONOUS_COMMIT = "SET LOCAL synchronous_commit = remote_apply"
"""Run by a store with standbys at the start of each write transaction."""


@dataclass
class _Standby:
    engine: Engine
    checked: float = float("-inf")
    usable: bool = False
    replayed: int = 0

    @property
    def name(self) -> str:
        return strip_credentials(self.engine.url)


class ReadRouter:
    """Chooses the engine of each read: a usable standby (round robin), else the primary."""

    def __init__(
        self, primary: Engine, standbys: Sequence[Engine], max_lag: float = DEFAULT_MAX_LAG
    ) -> None:
        self.primary = primary
        self.standbys = [_Standby(engine) for engine in standbys]
        self.max_lag = max_lag
        self.written = 0
        """The primary's WAL position (bytes) after this process's last write transaction."""
        self._lock = threading.Lock()
        self._turn = 0

    @property
    def routes(self) -> bool:
        """True if there are standbys to read from."""
        return bool(self.standbys)

    def note_write(self, conn: Connection) -> None:
        """Remember the primary's WAL position after a commit made on ``conn`` (reads wait
        for a standby to replay up to it). Never raises: the commit is done."""
        if not self.standbys:
            return
        try:
            position = int(conn.execute(_WRITTEN).scalar_one())
        except Exception as error:  # the write committed; reads fall back on lag alone
            log.warning("cannot read the primary's WAL position after a commit: %s", error)
            return
        with self._lock:
            self.written = max(self.written, position)

    def engine(self) -> Engine:
        """The engine to read from now (see the module docstring)."""
        count = len(self.standbys)
        if not count:
            return self.primary
        with self._lock:
            self._turn = (self._turn + 1) % count
            start = self._turn
        for index in range(count):
            standby = self.standbys[(start + index) % count]
            if self._usable(standby) and self._caught_up(standby):
                return standby.engine
        return self.primary

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        """A connection to read with; a standby that fails to connect is skipped for a while
        and the primary used instead."""
        engine = self.engine()
        try:
            conn = engine.connect()
        except Exception as error:
            if engine is self.primary:
                raise
            self.mark_down(engine, error)
            conn = self.primary.connect()
        with conn:
            yield conn

    def mark_down(self, engine: Engine, error: BaseException) -> None:
        """Skip the standby of ``engine`` for :data:`RETRY_DOWN_SECONDS`."""
        for standby in self.standbys:
            if standby.engine is engine:
                log.warning("standby %s unreachable, reading from the primary: %s",
                            standby.name, str(error).strip().splitlines()[0:1])  # fmt: skip
                standby.usable = False
                standby.checked = time.monotonic() + RETRY_DOWN_SECONDS - PROBE_SECONDS

    def primary_is_read_only(self) -> bool:
        """True if the primary URL leads to a server that cannot write now (a hot standby)."""
        if self.primary.dialect.name != "postgresql":
            return False
        from .db_errors import translate_errors  # which imports this module

        with translate_errors("query failed"), self.primary.connect() as conn:
            return bool(conn.exec_driver_sql("SELECT pg_is_in_recovery()").scalar())

    def dispose(self) -> None:
        """Close the standbys' connections."""
        for standby in self.standbys:
            standby.engine.dispose()

    def _usable(self, standby: _Standby) -> bool:
        now = time.monotonic()
        if now - standby.checked < PROBE_SECONDS:
            return standby.usable
        standby.checked = now
        try:
            with standby.engine.connect() as conn:
                replayed, lag = conn.execute(_PROBE).one()
        except Exception as error:
            self.mark_down(standby.engine, error)
            return False
        standby.replayed = max(standby.replayed, int(replayed or 0))
        was, standby.usable = standby.usable, float(lag) <= self.max_lag
        if was and not standby.usable:
            log.warning("standby %s lags %.1fs (more than %.1fs): reading from the primary",
                        standby.name, float(lag), self.max_lag)  # fmt: skip
        return standby.usable

    def _caught_up(self, standby: _Standby) -> bool:
        """True once the standby has replayed this process's last commit (waits a little)."""
        wanted = self.written
        if standby.replayed >= wanted:
            return True
        deadline = time.monotonic() + CATCH_UP_SECONDS
        with contextlib.suppress(Exception), standby.engine.connect() as conn:
            while True:
                standby.replayed = max(standby.replayed, int(conn.execute(_REPLAYED).scalar_one()))
                conn.rollback()  # a new snapshot (and no transaction held) for the next look
                if standby.replayed >= wanted or time.monotonic() >= deadline:
                    break
                time.sleep(CATCH_UP_STEP)
        return standby.replayed >= wanted

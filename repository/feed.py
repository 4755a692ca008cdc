"""Delivering committed changes to subscribers, from this process and from others.

One delivery path: every subscription remembers the last seq it was handed, and delivering means
reading the change log after the lowest of those, in seq order, and handing each change to the
subscriptions that have not seen it (under one lock, so each subscription gets each change once,
in commit order). Two things trigger it:

- a commit made through this store, in the committing thread, right after the commit (so a
  subscriber in the writing process has its events before ``add_*`` returns);
- a follower thread per store, started at the first ``subscribe``: on PostgreSQL it LISTENs on
  the schema's channel (writers NOTIFY inside their transaction; PostgreSQL delivers that only
  on commit) and reads the change log when woken, plus every ``poll_interval`` seconds as a
  safety net; a lost connection is re-opened with backoff and the log read from the last seq,
  so nothing is missed. On SQLite it reads the change log every ``poll_interval`` seconds.

NOTIFY does not reach a hot standby (and LISTEN fails there), nor does it pass a pgbouncer in
transaction mode (``?pool_mode=transaction``): a follower of a standby (found on connecting:
``pg_is_in_recovery()``) or of such a pooler reads the change log every
:data:`STANDBY_POLL_INTERVAL` seconds instead (or ``poll_interval``, if given). Seqs are handed
out in commit order and a standby replays commits in that order, so reading ``seq > last``
misses nothing there either.
"""

from __future__ import annotations

import contextlib
import logging
import random
import select
import socket
import threading
import time
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

if TYPE_CHECKING:
    import psycopg


from . import changelog, retention
from .db_errors import translate_errors
from .engine import pool_mode
from .errors import FeedGapError
from .events import Callback, Event, EventHub, GapCallback, Subscription
from .unit_of_work import UnitOfWork
from .validation import check_callable, check_flag

log = logging.getLogger("repository.feed")

SQLITE_POLL_INTERVAL = 0.2
"""Seconds between change-log reads of a SQLite follower."""
POSTGRES_SAFETY_POLL_INTERVAL = 10.0
"""Seconds between change-log reads of a PostgreSQL follower that was not notified."""
STANDBY_POLL_INTERVAL = 0.1
"""Seconds between change-log reads of a follower that cannot be notified (a hot standby, a
transaction-pooling pgbouncer): a read of an index, so cheap enough to do often."""
BATCH = 500
RECONNECT_MIN, RECONNECT_MAX = 0.1, 5.0


class Feed:
    """The subscriptions of one store and their delivery (see the module docstring)."""

    def __init__(self, engine: Engine, *, poll_interval: float | None = None) -> None:
        self.engine = engine
        self.hub = EventHub()
        self.postgres = engine.dialect.name == "postgresql"
        default = POSTGRES_SAFETY_POLL_INTERVAL if self.postgres else SQLITE_POLL_INTERVAL
        if poll_interval is not None and not poll_interval > 0:
            raise ValueError(f"poll_interval must be positive seconds, not {poll_interval!r}")
        self.poll_interval = default if poll_interval is None else float(poll_interval)
        self.unnotified_interval = STANDBY_POLL_INTERVAL if poll_interval is None else poll_interval
        """How often a follower that cannot LISTEN reads the change log."""
        self.notified = self.postgres and pool_mode(engine) == "session"
        """False where NOTIFY cannot reach the follower (set once it finds a standby)."""
        self._deliver_lock = threading.Lock()
        self._owner: int | None = None
        self._again = False
        self._start_lock = threading.Lock()
        self._follower: _Follower | None = None
        self._closed = False

    # ------------------------------------------------------------------ public to the store

    def subscribe(
        self,
        kind: str,
        callback: Callback,
        include_made_in_client: bool,
        since: int | None,
        on_gap: GapCallback | None = None,
    ) -> Subscription:
        """Register a subscription for changes after ``since`` (None: after the newest now).

        Raises :class:`FeedGapError` if changes after ``since`` were compacted away.
        """
        check_callable(callback, "callback")
        check_flag(include_made_in_client, "include_made_in_client")
        if on_gap is not None:
            check_callable(on_gap, "on_gap")
        if since is not None:
            changelog.check_page(since, 1)
            self.check_position(since)
        last = self.max_seq() if since is None else since
        sub = self.hub.add(kind, callback, include_made_in_client, last, on_gap)
        follower = self._ensure_follower()
        if since is not None:  # replay the backlog now, in the follower (or here)
            if follower is not None:
                follower.wake()
            else:
                self.deliver()
        return sub

    def after_commit(self) -> None:
        """Deliver in the committing thread; never raises (the follower catches up)."""
        if self.hub.low_water() is None:
            return
        try:
            self.deliver()
        except Exception:
            log.exception("delivering events after commit failed; the follower will retry")

    def read(self, after: int, limit: int) -> list[Event]:
        """Committed changes after seq ``after``, oldest first; :class:`FeedGapError` if
        some of them were compacted away."""
        with translate_errors("reading the change log failed"), self.engine.connect() as conn:
            changelog.check_position(conn, after)
            return changelog.read_changes(conn, after, limit)

    def check_position(self, since: int) -> None:
        """Raise :class:`FeedGapError` if changes after ``since`` were compacted away."""
        with translate_errors("reading the change log failed"), self.engine.connect() as conn:
            changelog.check_position(conn, since)

    def max_seq(self) -> int:
        """The newest committed seq."""
        with translate_errors("reading the change log failed"), self.engine.connect() as conn:
            return changelog.max_seq(conn)

    def deliver(self) -> None:
        """Hand every committed change the subscriptions have not seen to them, in seq order.

        A call from inside a callback (a subscriber that writes) returns at once: the delivery
        already running in this thread reads on until the change log is exhausted.
        """
        if self._owner == threading.get_ident():
            self._again = True
            return
        with self._deliver_lock:
            self._owner = threading.get_ident()
            try:
                while True:
                    self._again = False
                    after = self.hub.low_water()
                    if after is None:
                        return
                    try:
                        events = self.read(after, BATCH)
                    except FeedGapError as gap:
                        self.hub.gap(gap)
                        continue
                    for event in events:
                        self.hub.dispatch(event)
                    if len(events) < BATCH and not self._again:
                        return
            finally:
                self._owner = None

    def close(self) -> None:
        """Stop the follower thread (waits a few seconds for it)."""
        with self._start_lock:
            self._closed = True
            follower, self._follower = self._follower, None
        if follower is not None:
            follower.stop()

    # ------------------------------------------------------------------ follower

    def _ensure_follower(self) -> _Follower | None:
        if self.engine.dialect.name == "sqlite" and self.engine.url.database in (
            None,
            "",
            ":memory:",
        ):
            return None  # an in-memory database has no other writer to follow
        with self._start_lock:
            if self._closed:
                raise RuntimeError("the store is closed")
            if self._follower is None:
                self._follower = _Follower(self)
                self._follower.start()
            return self._follower

    def connect_listener(self) -> psycopg.Connection[Any]:
        """A new autocommit psycopg connection to the store's database, for LISTEN."""
        import psycopg  # here: SQLite users never load the PostgreSQL driver

        _args, params = self.engine.dialect.create_connect_args(self.engine.url)
        params.pop("context", None)
        params.setdefault("connect_timeout", 10)
        return psycopg.connect(**params, autocommit=True)


class _Follower(threading.Thread):
    """The background thread that delivers other processes' commits (see the module doc)."""

    def __init__(self, feed: Feed) -> None:
        super().__init__(name="dicom-repo-feed", daemon=True)
        self.feed = feed
        self.reconnects = 0
        self._stopping = threading.Event()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)

    def wake(self) -> None:
        """Make the thread read the change log now."""
        with contextlib.suppress(OSError):  # buffer full (a wake is pending anyway), or closed
            self._wake_w.send(b"\0")

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the thread to end and wait for it (not when called from the thread itself)."""
        self._stopping.set()
        self.wake()
        if threading.current_thread() is not self:
            self.join(timeout)
            self._wake_r.close()
            self._wake_w.close()

    def _wait(self, timeout: float, fd: int | None = None) -> bool:
        """Sleep until woken, ``fd`` is readable or ``timeout``; True if ``fd`` is readable."""
        watched: list[Any] = [self._wake_r] if fd is None else [self._wake_r, fd]
        ready = select.select(watched, [], [], max(0.0, timeout))[0]
        if self._wake_r in ready:
            try:
                while self._wake_r.recv(4096):
                    pass
            except OSError:
                pass
        return fd is not None and fd in ready

    def run(self) -> None:
        """Follow until stopped."""
        if self.feed.notified:
            self._listen()
        if not self.feed.notified:  # SQLite, a standby, a transaction-pooling pgbouncer
            postgres = self.feed.postgres
            self._poll(self.feed.unnotified_interval if postgres else self.feed.poll_interval)

    def _poll(self, interval: float) -> None:
        while not self._stopping.is_set():
            try:
                self.feed.deliver()
            except Exception as error:
                log.warning("change feed: reading the change log failed: %s", error)
            self._wait(interval)

    def _listen(self) -> None:
        delay = RECONNECT_MIN
        while not self._stopping.is_set():
            try:
                with self.feed.connect_listener() as conn:
                    standby = conn.execute("SELECT pg_is_in_recovery()").fetchone()
                    if standby and standby[0]:
                        log.info("change feed: a hot standby (no NOTIFY): polling instead")
                        self.feed.notified = False
                        return
                    schema = conn.execute("SELECT current_schema()").fetchone()
                    channel = changelog.notify_channel(schema[0] if schema else None)
                    conn.execute("SELECT set_config('application_name', %s, false)", [channel])
                    conn.execute(_listen(channel))
                    if self.reconnects:
                        log.warning("change feed: listener reconnected; catching up")
                    delay = RECONNECT_MIN
                    self._follow(conn)
                    return
            except Exception as error:  # connection lost, server down, or a failed read
                if self._stopping.is_set():
                    return
                self.reconnects += 1
                log.warning("change feed: listener connection lost (%s); reconnecting in %.1fs",
                            str(error).strip().splitlines()[0] if str(error).strip() else
                            type(error).__name__, delay)  # fmt: skip
                self._wait(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, RECONNECT_MAX)

    def _follow(self, conn: psycopg.Connection[Any]) -> None:
        self.feed.deliver()  # catch up on what committed before LISTEN (or while disconnected)
        interval = self.feed.poll_interval
        next_poll = time.monotonic() + interval
        fd = conn.pgconn.socket
        while not self._stopping.is_set():
            notified = self._wait(next_poll - time.monotonic(), fd)
            if self._stopping.is_set():
                return
            if notified:
                conn.pgconn.consume_input()  # raises once the server closed the connection
                while conn.pgconn.notifies() is not None:
                    pass
            elif time.monotonic() >= next_poll:
                conn.execute("SELECT 1")  # the safety poll also proves the connection alive
                next_poll = time.monotonic() + interval
            self.feed.deliver()


def _listen(channel: str) -> Any:
    from psycopg import sql  # loaded with the listener connection, never for SQLite

    return sql.SQL("LISTEN {}").format(sql.Identifier(channel))


class ChangeFeedMethods:
    """The change-feed methods of :class:`~repository.Store`: subscriptions, the change log as
    a replayable feed, and its compaction."""

    _uow: UnitOfWork
    _feed: Feed

    def subscribe(
        self,
        event: str,
        callback: Callback,
        *,
        include_made_in_client: bool = False,
        since: int | None = None,
        on_gap: GapCallback | None = None,
    ) -> Subscription:
        """Call ``callback(Event)`` after each commit (by any process) that fired ``event``:
        an ``EVENTS`` member, its OHIF name (``EVENTS.SERIES_ADDED.ohif_name``) or ``"*"``
        (all, including kinds written by a newer version).

        Each change once, in commit order, from ``since`` (None: from now; N: replay after
        seq N first). Callbacks run in the committing thread for this store's commits, else
        in the store's follower thread. ``made_in_client`` writes need
        ``include_made_in_client``.

        If changes after ``since`` were compacted away, :class:`FeedGapError` is raised; if
        that happens later to a lagging subscription, ``on_gap(error)`` is called (without it
        the subscription ends, logged). Resync: re-read the state, subscribe from ``newest``.
        """
        return self._feed.subscribe(event, callback, include_made_in_client, since, on_gap)

    def changes(self, since: int = 0, limit: int = 1000) -> list[Event]:
        """Committed changes with seq greater than ``since``, in commit order (at most
        ``limit``): the change log as a durable, replayable feed.

        Page through it with ``since=changes[-1].seq``. Seqs are handed out in commit order,
        so a follower that remembers the last seq it saw misses nothing.
        """
        with self._uow.read() as conn:
            return changelog.read_page(conn, since, limit)

    def compact_changes(
        self, *, before_seq: int | None = None, keep_days: float | None = None
    ) -> changelog.Compaction:
        """Delete old changes from the change log: those with ``seq < before_seq``, or those
        older than ``keep_days`` days (give one). The newest change is always kept.

        A follower, ``subscribe(since=...)`` or ``changes(since=...)`` whose position is below
        the removed changes then gets :class:`FeedGapError` rather than a silent gap.
        """
        return self._uow.write(retention.compact_changes(before_seq, keep_days, self._uow.channel))

"""Scratch PostgreSQL clusters for the replication tests: a primary, a streaming hot standby made
with ``pg_basebackup -R``, and a pgbouncer in transaction pooling mode in front of the primary;
or (:class:`citus_cluster.CitusCluster`) a Citus coordinator with two workers and a standby of
the coordinator.

Everything runs on free loopback ports in a temporary folder, as the ``postgres`` OS user when
the tests run as root (PostgreSQL's binaries refuse root), and is torn down afterwards. The
shared server on port 5432 is never touched.
"""

from __future__ import annotations

import contextlib
import io
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
import scratch_postgres
from orthanc import free_port
from pydicom.dataset import Dataset

from repository import migrate
from repository.engine import make_engine

PG_BIN = scratch_postgres.PG_BIN or Path("/usr/lib/postgresql/15/bin")
PRIMARY_SETTINGS = """
listen_addresses = '127.0.0.1'
unix_socket_directories = '{sockets}'
wal_level = replica
max_wal_senders = 5
hot_standby = on
fsync = off
full_page_writes = off
synchronous_commit = on
wal_receiver_status_interval = 1s
shared_buffers = 32MB
max_connections = 200
"""
"""The primary's settings (``port`` is added); once the standby runs, ``synchronous_standby_names
= '*'`` too: a commit waits for the standby (with ``remote_apply``, until it applied it)."""
STANDBY_SETTINGS = """
synchronous_standby_names = ''
hot_standby_feedback = on
max_standby_streaming_delay = 1s
"""
"""Added to the standby's copy of the primary's settings: once promoted it has no standby to
wait for; a query in the way of replay is cancelled after 1 s (a recovery conflict)."""
DATABASE = "test"
CLI = str(Path(sys.executable).parent / "dicom-repo")
STOW = {"Content-Type": 'multipart/related; type="application/dicom"; boundary=b'}
"""The headers of a :func:`stow_body`."""


def available() -> str | None:
    """Why the scratch clusters cannot run here (None: they can)."""
    for binary in ("initdb", "pg_ctl", "pg_basebackup"):
        if not (PG_BIN / binary).is_file():
            return f"{PG_BIN / binary} is missing"
    if shutil.which("pgbouncer") is None:
        return "pgbouncer is not installed (apt-get install pgbouncer)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root without a postgres user"
    return None


_run = scratch_postgres.run_as_postgres


def libpq_url(port: int, extra: str = "") -> str:
    """The URL of database ``test`` on ``port``."""
    return f"postgresql://postgres@127.0.0.1:{port}/{DATABASE}{extra}"


@dataclass
class Cluster:
    """A primary, its streaming standby and a pgbouncer, in ``root``."""

    root: Path
    primary_port: int = field(default_factory=free_port)
    standby_port: int = field(default_factory=free_port)
    bouncer_port: int = field(default_factory=free_port)
    standbys: list[str] = field(default_factory=list)
    primary_dir: str = "primary"
    """The primary's data folder in ``root`` (the roles swap in :meth:`replace_primary`)."""
    standby_dir: str = "standby"

    @property
    def primary(self) -> str:
        """The primary's URL."""
        return libpq_url(self.primary_port)

    @property
    def standby(self) -> str:
        """The standby's URL."""
        return libpq_url(self.standby_port)

    @property
    def bouncer(self) -> str:
        """The URL of the primary through pgbouncer (transaction pooling)."""
        return libpq_url(self.bouncer_port, "?pool_mode=transaction")

    @property
    def multi_host(self) -> str:
        """A libpq multi-host URL that finds whichever of the two is the primary."""
        return (f"postgresql://postgres@127.0.0.1:{self.primary_port},127.0.0.1:"
                f"{self.standby_port}/{DATABASE}?target_session_attrs=read-write")  # fmt: skip

    @classmethod
    def unavailable(cls) -> str | None:
        """Why this kind of cluster cannot run here beyond :func:`available` (None: it can)."""
        return None

    def start(self) -> Cluster:
        """initdb, start the primary, create and migrate the database, make and start the
        standby, start pgbouncer."""
        data = self.root / self.primary_dir
        _run(PG_BIN / "initdb", "-D", data, "-U", "postgres", "--auth=trust", "-N", "-E", "UTF8")
        with (data / "postgresql.conf").open("a") as conf:
            conf.write(PRIMARY_SETTINGS.format(sockets=self.root))
            conf.write(f"port = {self.primary_port}\n")
        self._pg_ctl(self.primary_dir, "start")
        with psycopg.connect(libpq_url(self.primary_port).replace(DATABASE, "postgres"),
                             autocommit=True) as conn:  # fmt: skip
            conn.execute(f"CREATE DATABASE {DATABASE}")
        engine = make_engine(self.primary)
        migrate.upgrade(engine)
        engine.dispose()
        self.add_standby(self.standby_dir, self.standby_port)
        self._synchronous()
        self._start_bouncer()
        self.wait_replayed()
        return self

    def _synchronous(self) -> None:
        """Make the primary's commits wait for its standby (set after the standby was copied:
        a promoted standby must not wait for one)."""
        with psycopg.connect(self.primary, autocommit=True) as conn:
            conn.execute("ALTER SYSTEM SET synchronous_standby_names = '*'")
            conn.execute("SELECT pg_reload_conf()")

    def add_standby(self, name: str, port: int) -> str:
        """Make (``pg_basebackup -R``) and start a streaming standby ``name``; its URL."""
        _run(PG_BIN / "pg_basebackup", "-h", "127.0.0.1", "-p", str(self.primary_port), "-U",
             "postgres", "-D", self.root / name, "-R", "-X", "stream", "-c", "fast")  # fmt: skip
        with (self.root / name / "postgresql.conf").open("a") as conf:
            conf.write(STANDBY_SETTINGS + f"port = {port}\n")
        self._pg_ctl(name, "start")
        self.standbys.append(name)
        return libpq_url(port)

    def _pg_ctl(self, which: str, action: str, *options: str) -> None:
        data = self.root / which
        _run(PG_BIN / "pg_ctl", "-D", data, "-l", self.root / f"{which}.log", "-w", "-t", "60",
             *options, action)  # fmt: skip

    def _start_bouncer(self) -> None:
        (self.root / "userlist.txt").write_text('"postgres" ""\n')
        self._configure_bouncer()
        _run("pgbouncer", "-d", self.root / "pgbouncer.ini")
        deadline = time.monotonic() + 30
        while True:
            try:
                psycopg.connect(libpq_url(self.bouncer_port), connect_timeout=2).close()
                return
            except psycopg.Error:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def _configure_bouncer(self) -> None:
        (self.root / "pgbouncer.ini").write_text(
            f"[databases]\n{DATABASE} = host=127.0.0.1 port={self.primary_port} "
            f"dbname={DATABASE}\n"
            f"[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {self.bouncer_port}\n"
            f"unix_socket_dir =\nauth_type = trust\nauth_file = {self.root}/userlist.txt\n"
            f"pool_mode = transaction\nmax_client_conn = 500\ndefault_pool_size = 20\n"
            f"logfile = {self.root}/pgbouncer.log\npidfile = {self.root}/pgbouncer.pid\n"
        )

    def stop_primary(self) -> None:
        """Stop the primary at once, as a crash would (``-m immediate``)."""
        self._pg_ctl(self.primary_dir, "stop", "-m", "immediate")

    @property
    def primary_stopped(self) -> bool:
        """True once :meth:`stop_primary` ran (and :meth:`replace_primary` did not yet)."""
        return not (self.root / self.primary_dir / "postmaster.pid").exists()

    def replace_primary(self) -> None:
        """After a failover: the standby (promoted now if it is not yet) becomes the primary,
        and a new standby made from it takes the old primary's port, with synchronous
        replication as before; pgbouncer is pointed at the new primary. The two URLs then
        lead where they did before the failover (:attr:`multi_host` too)."""
        assert self.primary_stopped, "the primary still runs"
        with psycopg.connect(self.standby, autocommit=True) as conn:
            if conn.execute("SELECT pg_is_in_recovery()").fetchone() == (True,):
                conn.execute("SELECT pg_promote(true, 60)")
        shutil.rmtree(self.root / self.primary_dir)
        self.standbys.remove(self.standby_dir)
        self.primary_dir, self.standby_dir = self.standby_dir, self.primary_dir
        self.primary_port, self.standby_port = self.standby_port, self.primary_port
        self.add_standby(self.standby_dir, self.standby_port)
        self._synchronous()
        self._configure_bouncer()
        with contextlib.suppress(OSError, ValueError):
            os.kill(int((self.root / "pgbouncer.pid").read_text().strip()), signal.SIGHUP)
        self.wait_replayed()

    def promote(self) -> None:
        """Promote the standby (``pg_promote()``, which waits until it is done)."""
        with psycopg.connect(self.standby, autocommit=True) as conn:
            conn.execute("SELECT pg_promote(true, 60)")

    def wait_replayed(self, timeout: float = 30.0) -> None:
        """Wait until the standby has replayed everything the primary has written."""
        with psycopg.connect(self.primary, autocommit=True) as conn:
            row = conn.execute("SELECT pg_current_wal_lsn()").fetchone()
        assert row is not None
        deadline = time.monotonic() + timeout
        with psycopg.connect(self.standby, autocommit=True) as conn:
            while True:
                done = conn.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [row[0]])
                if (found := done.fetchone()) and found[0]:
                    return
                assert time.monotonic() < deadline, "the standby did not catch up"
                time.sleep(0.02)

    def close(self) -> None:
        """Stop everything and remove the folder."""
        pid_file = self.root / "pgbouncer.pid"
        with contextlib.suppress(OSError, ValueError):
            os.kill(int(pid_file.read_text().strip()), signal.SIGTERM)
        for which in (*self.standbys, self.primary_dir):
            self._stop_node(which)
        shutil.rmtree(self.root, ignore_errors=True)

    def _stop_node(self, which: str) -> None:
        """Stop the server in folder ``which`` (``pg_ctl -m immediate``; if that fails, its
        postmaster is killed by the PID in ``postmaster.pid``)."""
        pid_file = self.root / which / "postmaster.pid"
        if not pid_file.exists():
            return
        try:
            self._pg_ctl(which, "stop", "-m", "immediate")
        except subprocess.SubprocessError:
            with contextlib.suppress(OSError, ValueError, IndexError):
                os.kill(int(pid_file.read_text().split()[0]), signal.SIGKILL)


@contextlib.contextmanager
def replay_paused(cluster: Cluster) -> Iterator[None]:
    """The standby receives WAL but does not apply it (a standby far behind; a ``remote_apply``
    commit waits)."""
    with psycopg.connect(cluster.standby, autocommit=True) as conn:
        conn.execute("SELECT pg_wal_replay_pause()")
        try:
            yield
        finally:
            conn.execute("SELECT pg_wal_replay_resume()")


def new_cluster(attempts: int = 3, kind: type[Cluster] = Cluster) -> Cluster:
    """A started :class:`Cluster` (or ``kind``) in a new temporary folder owned by the postgres
    user (tried again on other ports if one was taken meanwhile)."""
    for attempt in range(1, attempts + 1):
        root = Path(tempfile.mkdtemp(prefix="dicom-repo-replication-"))
        if os.geteuid() == 0:
            entry = pwd.getpwnam("postgres")
            os.chown(root, entry.pw_uid, entry.pw_gid)
        cluster = kind(root)
        try:
            return cluster.start()
        except BaseException as error:
            logs = "".join(f"\n--- {p.name}\n{p.read_text()[-2000:]}" for p in root.glob("*.log"))
            cluster.close()
            taken = "could not create listen socket" in logs or "Address already in use" in logs
            if taken and attempt < attempts:
                continue
            if isinstance(error, subprocess.CalledProcessError):
                raise RuntimeError(f"{error.cmd}: {error.stderr}{logs}") from error
            raise
    raise AssertionError("unreachable")


def running_cluster(what: str, kind: type[Cluster] = Cluster) -> Iterator[Cluster]:
    """A started cluster (of ``kind``) for a fixture (stopped and removed afterwards, whatever
    the tests did); ``what`` names the tests for the skip (outside CI) or failure (under CI)
    when it cannot run."""
    reason = available() or kind.unavailable()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but {what} cannot run: {reason}")
        pytest.skip(f"{what} SKIPPED: {reason}")
    started = new_cluster(kind=kind)
    try:
        yield started
    finally:
        started.close()


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``dicom-repo ARGS`` without the caller's ``$DICOM_REPO_*`` (plus ``env``)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DICOM_REPO_")}
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=300,
                          env={**clean, **(env or {})})  # fmt: skip


def stow_body(*datasets: Dataset) -> bytes:
    """A STOW-RS request body holding ``datasets`` (sent with the :data:`STOW` headers)."""
    parts = []
    for ds in datasets:
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        parts.append(b"--b\r\nContent-Type: application/dicom\r\n\r\n" + buffer.getvalue())
    return b"\r\n".join(parts) + b"\r\n--b--\r\n"

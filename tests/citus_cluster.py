"""A scratch Citus cluster for the tests (see :mod:`replication`): a coordinator (the primary,
the schema migrated and distributed), two workers and a streaming standby of the coordinator,
made from Citus as ``../shared/citus/install.sh`` installs it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import psycopg
from orthanc import free_port
from replication import (
    DATABASE,
    PG_BIN,
    PRIMARY_SETTINGS,
    Cluster,
    _run,
    libpq_url,
)

from repository import citus, migrate
from repository.engine import make_engine


@dataclass
class CitusCluster(Cluster):
    """A Citus coordinator (the primary: the schema migrated and distributed, 4 shards a table),
    two workers, and a streaming standby of the coordinator; no pgbouncer."""

    worker_ports: tuple[int, int] = field(default_factory=lambda: (free_port(), free_port()))

    @classmethod
    def unavailable(cls) -> str | None:
        """Why a scratch Citus cluster cannot run here (None: it can)."""
        library = PG_BIN.parent / "lib" / "citus.so"
        return None if library.is_file() else f"Citus is not installed ({library} is missing)"

    def start(self) -> Cluster:
        """initdb and start the three nodes, the database with the citus extension on each,
        the workers added; migrate and distribute; make and start the coordinator's standby."""
        nodes = {"primary": self.primary_port, "worker1": self.worker_ports[0],
                 "worker2": self.worker_ports[1]}  # fmt: skip
        for name, port in nodes.items():
            data = self.root / name
            _run(PG_BIN / "initdb", "-D", data, "-U", "postgres", "--auth=trust", "-N")
            with (data / "postgresql.conf").open("a") as conf:
                conf.write(PRIMARY_SETTINGS.format(sockets=self.root) + CITUS_SETTINGS)
                conf.write(f"port = {port}\n")
            self._pg_ctl(name, "start")
            with psycopg.connect(libpq_url(port).replace(DATABASE, "postgres"),
                                 autocommit=True) as conn:  # fmt: skip
                conn.execute(f"CREATE DATABASE {DATABASE}")
            with psycopg.connect(libpq_url(port), autocommit=True) as conn:
                conn.execute("CREATE EXTENSION citus")
        with psycopg.connect(self.primary, autocommit=True) as conn:
            conn.execute("SELECT citus_set_coordinator_host('127.0.0.1', %s)", [self.primary_port])
            for port in self.worker_ports:
                conn.execute("SELECT citus_add_node('127.0.0.1', %s)", [port])
        engine = make_engine(self.primary)
        migrate.upgrade(engine)
        with engine.begin() as conn:
            citus.distribute(conn, shard_count=4)
        engine.dispose()
        self.add_standby("standby", self.standby_port)
        with psycopg.connect(self.primary, autocommit=True) as conn:
            conn.execute("ALTER SYSTEM SET synchronous_standby_names = '*'")
            conn.execute("SELECT pg_reload_conf()")
        self.wait_replayed()
        return self

    def prepared_on_workers(self) -> int:
        """Two-phase transactions the workers hold prepared (none once every commit ended)."""
        total = 0
        for port in self.worker_ports:
            with psycopg.connect(libpq_url(port), autocommit=True) as conn:
                row = conn.execute("SELECT count(*) FROM pg_prepared_xacts").fetchone()
                total += int(row[0]) if row else 0
        return total

    def worker_of(self, study: str) -> int:
        """The port of the worker holding ``study``'s shard."""
        with psycopg.connect(self.primary, autocommit=True) as conn:
            row = conn.execute(
                "SELECT nodeport FROM citus_shards WHERE table_name = 'study'::regclass AND "
                "shardid = get_shard_id_for_distribution_column('study', %s::text)", [study]
            ).fetchone()  # fmt: skip
        assert row is not None
        return int(row[0])

    def restart_worker(self, port: int, down: float) -> None:
        """Stop the worker on ``port`` as a crash would, start it again ``down`` seconds later."""
        name = f"worker{self.worker_ports.index(port) + 1}"
        self._pg_ctl(name, "stop", "-m", "immediate")
        time.sleep(down)
        self._pg_ctl(name, "start")

    def close(self) -> None:
        """Stop the workers too."""
        for worker in ("worker1", "worker2"):
            self._stop_node(worker)
        super().close()


CITUS_SETTINGS = "shared_preload_libraries = 'citus'\nmax_prepared_transactions = 200\n"

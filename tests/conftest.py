"""Fixtures: every store test runs against a SQLite file and a real PostgreSQL server, and the
store's, feed's and server's tests (:data:`CITUS_MODULES`) against a Citus cluster too.

PostgreSQL comes from $DICOM_REPO_TEST_POSTGRES_URL (default: the local server's ``test``
database). Each test gets its own schema, migrated from empty, and dropped afterwards. Without a
server the PostgreSQL tests are skipped, loudly, unless $CI is set, in which case they fail.

Citus comes from $DICOM_REPO_TEST_CITUS_URL (a coordinator, e.g. one started by
``../shared/citus/cluster.sh``): each test's schema is migrated, then distributed with 4 shards
per table (``repository.citus.distribute``). Unset or unreachable, the Citus tests are skipped,
loudly, and fail under $CI.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pydicom
import pytest
from sqlalchemy.engine import make_url

import repository
from repository import citus, migrate
from repository.engine import make_engine

pytest_plugins = ["pytester"]

PG_URL = os.environ.get(
    "DICOM_REPO_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
PYDICOM_FILES = Path(pydicom.__file__).parent / "data" / "test_files"

CITUS_URL = os.environ.get("DICOM_REPO_TEST_CITUS_URL", "")
CITUS_SHARDS = 4
CITUS_MODULES = frozenset({
    "test_store", "test_deletes", "test_feed", "test_events", "test_unit_of_work",
    "test_display_sets", "test_web_qido_wado", "test_web_stow_feed", "test_web_metadata_cache",
    "test_reporting_views", "test_reporting_cookbook", "test_concurrency", "test_retention",
    "test_cross_process_events", "test_citus", "test_web_delete", "test_ohif_image_ids",
    "test_ohif_updates", "test_summaries", "test_web_stow_bodies", "test_web_rendered",
    "test_lost_connections", "test_citus_failover",
})  # fmt: skip
"""Test modules whose store, feed and server tests also run on Citus (the others are left out
of a Citus run: every Citus test distributes a schema of its own, which takes seconds)."""

_pg_error: str | None = None
_citus_error: str | None = None


def _libpq_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _check_postgres(url: str = PG_URL, citus: bool = False) -> str | None:
    if not url:
        return "DICOM_REPO_TEST_CITUS_URL is not set"
    try:
        with psycopg.connect(_libpq_dsn(url), connect_timeout=5) as conn:
            conn.execute("SELECT 1")
            if (
                citus
                and not conn.execute(
                    "SELECT 1 FROM pg_extension WHERE extname = 'citus'"
                ).fetchone()
            ):
                return "the database has no citus extension"
    except Exception as error:
        return str(error).strip() or type(error).__name__
    return None


def pytest_configure(config: pytest.Config) -> None:
    global _pg_error, _citus_error
    _pg_error = _check_postgres()
    if _pg_error and os.environ.get("CI"):
        raise pytest.UsageError(f"CI is set but PostgreSQL at {PG_URL} is unreachable: {_pg_error}")
    _citus_error = _check_postgres(CITUS_URL, citus=True)
    if _citus_error and os.environ.get("CI"):
        raise pytest.UsageError(f"CI is set but Citus is unavailable: {_citus_error}")


def pytest_report_header(config: pytest.Config) -> list[str]:
    state = f"UNREACHABLE ({_pg_error}) - PostgreSQL tests SKIPPED" if _pg_error else "reachable"
    citus = f"UNAVAILABLE ({_citus_error}) - Citus tests SKIPPED" if _citus_error else "reachable"
    where = make_url(CITUS_URL).render_as_string() if CITUS_URL else "(none)"
    return [f"PostgreSQL {make_url(PG_URL).render_as_string()}: {state}", f"Citus {where}: {citus}"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Citus runs only the modules of :data:`CITUS_MODULES`."""
    kept, dropped = [], []
    for item in items:
        module = item.module.__name__.rsplit(".", 1)[-1] if item.module else ""
        citus = "citus" in item.keywords and item.get_closest_marker("citus") is not None
        (dropped if citus and module not in CITUS_MODULES else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _pg_error:
        terminalreporter.write_sep(
            "!", f"PostgreSQL tests were SKIPPED: {PG_URL} unreachable ({_pg_error})", red=True
        )
    if _citus_error:
        terminalreporter.write_sep(
            "!", f"Citus tests were SKIPPED: {_citus_error} (see tests/conftest.py)", red=True
        )
    # see test_dicomweb_pull.py and test_ohif_viewer.py: skipped only outside CI
    for marker, what in (("Orthanc unavailable", "DICOMweb"), ("OHIF viewer unavailable", "OHIF")):
        skipped = [
            str(report.longrepr[2]).removeprefix("Skipped: ")
            for report in terminalreporter.stats.get("skipped", [])
            if isinstance(report.longrepr, tuple) and marker in str(report.longrepr[2])
        ]
        if skipped:
            terminalreporter.write_sep(
                "!", f"{len(skipped)} {what} tests were SKIPPED: {skipped[0]}", red=True
            )


def postgres_schema_url(citus: bool = False) -> Iterator[str]:
    """A fresh, empty schema on the test server (or the Citus coordinator); the URL makes it
    the search path."""
    if _pg_error and not citus:
        pytest.skip(f"PostgreSQL unreachable: {_pg_error}")
    if _citus_error and citus:
        pytest.skip(f"Citus unavailable: {_citus_error}")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    server = CITUS_URL if citus else PG_URL
    dsn = _libpq_dsn(server)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    url = make_url(server).set(drivername="postgresql+psycopg")
    url = url.update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


BACKENDS = [pytest.param("sqlite", marks=pytest.mark.sqlite),
            pytest.param("postgresql", marks=pytest.mark.postgresql),
            pytest.param("citus", marks=pytest.mark.citus)]  # fmt: skip


def _empty_url(backend: str, tmp_path: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
    else:
        yield from postgres_schema_url(citus=backend == "citus")


@pytest.fixture(params=BACKENDS[:2])
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of an empty database (no tables), on each backend but Citus."""
    yield from _empty_url(request.param, tmp_path)


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of a database migrated to head, on each backend (on Citus: distributed too)."""
    for url in _empty_url(request.param, tmp_path):
        yield migrated(url, distributed=request.param == "citus")


@pytest.fixture
def store(db_url: str) -> Iterator[repository.Store]:
    """An open store on a migrated database, on each backend."""
    with repository.connect(db_url) as opened:
        yield opened


@pytest.fixture
def pg_empty_url() -> Iterator[str]:
    """URL of an empty schema on the PostgreSQL test server (PostgreSQL-only tests)."""
    yield from postgres_schema_url()


@pytest.fixture(params=BACKENDS[1:])
def server_db_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """URL of a schema migrated to head on the PostgreSQL test server and on the Citus
    coordinator (distributed), for tests of what a server does: terminated backends, deadlocks."""
    for url in postgres_schema_url(citus=request.param == "citus"):
        yield migrated(url, distributed=request.param == "citus")


def migrated(url: str, distributed: bool = False) -> str:
    """``url`` migrated to head (and, with ``distributed``, distributed over Citus)."""
    engine = make_engine(url)
    migrate.upgrade(engine)
    if distributed:
        with engine.begin() as conn:
            citus.distribute(conn, shard_count=CITUS_SHARDS)
    engine.dispose()
    return url


@pytest.fixture(scope="module", params=BACKENDS)
def module_store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[repository.Store]:
    """One open store per module and backend, for tests that run many examples (Hypothesis):
    each example must use UIDs of its own, as the database is shared."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("module_store") / "test.db"
        with repository.connect(migrated(f"sqlite:///{path}")) as opened:
            yield opened
        return
    schema = postgres_schema_url(citus=request.param == "citus")
    try:
        with repository.connect(migrated(next(schema), request.param == "citus")) as opened:
            yield opened
    finally:
        schema.close()  # drops the schema


@pytest.fixture(scope="session")
def replica_cluster() -> Iterator[Any]:
    """A scratch primary with a streaming standby and a pgbouncer in front
    (tests/replication.py), shared by the replication tests, which leave it as they found it;
    CI must be able to run it."""
    from replication import running_cluster  # its PostgreSQL programs are looked up on import

    yield from running_cluster("the replication tests")

"""Fixtures: every store test runs against a SQLite file and a real PostgreSQL server.

PostgreSQL comes from $DICOM_REPO_TEST_POSTGRES_URL (default: the local server's ``test``
database). Each test gets its own schema, migrated from empty, and dropped afterwards. Without a
server the PostgreSQL tests are skipped, loudly, unless $CI is set, in which case they fail.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pydicom
import pytest
from sqlalchemy.engine import make_url

import repository
from repository import migrate
from repository.engine import make_engine

pytest_plugins = ["pytester"]

PG_URL = os.environ.get(
    "DICOM_REPO_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
PYDICOM_FILES = Path(pydicom.__file__).parent / "data" / "test_files"

_pg_error: str | None = None


def _libpq_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _check_postgres() -> str | None:
    try:
        with psycopg.connect(_libpq_dsn(PG_URL), connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except Exception as error:
        return str(error).strip() or type(error).__name__
    return None


def pytest_configure(config: pytest.Config) -> None:
    global _pg_error
    _pg_error = _check_postgres()
    if _pg_error and os.environ.get("CI"):
        raise pytest.UsageError(f"CI is set but PostgreSQL at {PG_URL} is unreachable: {_pg_error}")


def pytest_report_header(config: pytest.Config) -> str:
    state = f"UNREACHABLE ({_pg_error}) - PostgreSQL tests SKIPPED" if _pg_error else "reachable"
    return f"PostgreSQL {make_url(PG_URL).render_as_string()}: {state}"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _pg_error:
        terminalreporter.write_sep(
            "!", f"PostgreSQL tests were SKIPPED: {PG_URL} unreachable ({_pg_error})", red=True
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


def postgres_schema_url() -> Iterator[str]:
    """A fresh, empty schema on the test server; the URL makes it the search path."""
    if _pg_error:
        pytest.skip(f"PostgreSQL unreachable: {_pg_error}")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    dsn = _libpq_dsn(PG_URL)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    url = make_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(params=[pytest.param("sqlite", marks=pytest.mark.sqlite),
                        pytest.param("postgresql", marks=pytest.mark.postgresql)])  # fmt: skip
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of an empty database (no tables), on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
    else:
        yield from postgres_schema_url()


@pytest.fixture
def db_url(empty_db_url: str) -> str:
    """URL of a database migrated to head, on each backend."""
    engine = make_engine(empty_db_url)
    migrate.upgrade(engine)
    engine.dispose()
    return empty_db_url


@pytest.fixture
def store(db_url: str) -> Iterator[repository.Store]:
    """An open store on a migrated database, on each backend."""
    with repository.connect(db_url) as opened:
        yield opened


@pytest.fixture
def pg_empty_url() -> Iterator[str]:
    """URL of an empty schema on the PostgreSQL test server (PostgreSQL-only tests)."""
    yield from postgres_schema_url()


def _migrated(url: str) -> str:
    engine = make_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    return url


@pytest.fixture(
    scope="module",
    params=[
        pytest.param("sqlite", marks=pytest.mark.sqlite),
        pytest.param("postgresql", marks=pytest.mark.postgresql),
    ],
)
def module_store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[repository.Store]:
    """One open store per module and backend, for tests that run many examples (Hypothesis):
    each example must use UIDs of its own, as the database is shared."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("module_store") / "test.db"
        with repository.connect(_migrated(f"sqlite:///{path}")) as opened:
            yield opened
        return
    schema = postgres_schema_url()
    try:
        with repository.connect(_migrated(next(schema))) as opened:
            yield opened
    finally:
        schema.close()  # drops the schema

"""pytest plugin: a fresh, migrated store per test, and realistic studies.

Installed with the package (entry point ``pytest11``), so a test only asks for the fixtures::

    def test_my_pipeline(dicom_store, dicom_factory):
        dicom_store.add_instances(dicom_factory.study(modalities=("CT", "SEG"), series=2))
        assert len(dicom_store.get_study_instance_uids()) == 1

``dicom_store`` is a SQLite file in a temporary folder by default. With ``--dicom-repo-db URL``
(or ``$DICOM_REPO_TEST_DB``) naming a PostgreSQL database, each test gets a schema of its own in
it instead, created, migrated and dropped around the test; a SQLite URL gives each test a new
file beside the one named, removed afterwards. Names are random, so parallel runs
(pytest-xdist) never share a database.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from .. import connect, migrate
from ..config import resolve_url
from ..engine import make_engine
from ..store import Store
from ..validation import strip_credentials
from .factory import DicomFactory

OPTION = "--dicom-repo-db"
ENV_VAR = "DICOM_REPO_TEST_DB"


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register ``--dicom-repo-db``."""
    parser.addoption(
        OPTION,
        default=None,
        help=f"database for the dicom_store fixture: a PostgreSQL URL gives each test a schema "
        f"of its own there (default ${ENV_VAR}, else a SQLite file per test)",
    )


def database_url(config: pytest.Config) -> str | None:
    """The database the user chose for ``dicom_store``, if any."""
    chosen = config.getoption(OPTION) or os.environ.get(ENV_VAR)
    return resolve_url(chosen) if chosen else None


@pytest.fixture
def dicom_store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Store]:
    """A fresh, migrated, empty store; closed and dropped after the test.

    The SQLite file lives in a folder of its own, not in the test's ``tmp_path``.
    """
    chosen = database_url(request.config)
    if chosen is None:
        folder = tmp_path_factory.mktemp("dicom_store")
        yield from _open(f"sqlite:///{folder / 'dicom-repo.db'}")
    elif make_url(chosen).get_backend_name() == "sqlite":
        yield from _own_sqlite_file(chosen)
    else:
        yield from _in_own_schema(chosen)


def _own_sqlite_file(url: str) -> Iterator[Store]:
    """A new file beside the one ``url`` names, removed after the test."""
    folder = Path(make_url(url).database or "dicom-repo.db").resolve().parent
    path = folder / f"dicom_store_{uuid.uuid4().hex[:16]}.db"
    try:
        yield from _open(f"sqlite:///{path}")
    finally:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)


def _open(url: str) -> Iterator[Store]:
    engine = make_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    store = connect(url)
    try:
        yield store
    finally:
        store.close()


def _in_own_schema(url: str) -> Iterator[Store]:
    schema = f"dicom_repo_test_{uuid.uuid4().hex[:16]}"
    admin = make_engine(url)
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as error:
        admin.dispose()
        where = strip_credentials(url)
        pytest.fail(f"dicom_store: cannot create a schema in {where}: {error}")
    scoped = make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield from _open(scoped.render_as_string(hide_password=False))
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def dicom_factory() -> DicomFactory:
    """Builds realistic studies: ``dicom_factory.study(modalities=("CT", "SEG"), series=3,
    instances=40)`` returns naturalized dicts; ``dicom_factory.files(tmp_path, ...)`` writes
    Part-10 files."""
    return DicomFactory()

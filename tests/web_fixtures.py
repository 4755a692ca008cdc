"""Fixtures for the DICOMweb server tests: a loaded database per backend and a server on it.

Every module that imports these gets, per backend (SQLite file, PostgreSQL schema, and for the
modules of ``conftest.CITUS_MODULES`` a distributed schema on Citus), a database holding the
pydicom test files that keep the DICOM model whole, and one ``dicom-repo serve`` with 2 workers
on it (STOW-RS writing to a temporary folder).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from conftest import BACKENDS, migrated, postgres_schema_url
from dicomweb_client.api import DICOMwebClient
from orthanc import UploadedFile, consistent_selection
from web_server import WebServer, start

import repository
from repository.ingest import ingest
from repository.reading import sample_files


@pytest.fixture(scope="session")
def web_files() -> list[UploadedFile]:
    """The pydicom test files loaded into every server's database."""
    return consistent_selection(sample_files())


@pytest.fixture(scope="module", params=BACKENDS)
def web_db(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
    web_files: list[UploadedFile],
) -> Iterator[str]:  # fmt: skip
    """A database (each backend) holding :func:`web_files`, ingested by ``ingest``."""
    if request.param == "sqlite":
        urls: Iterator[str] = iter([f"sqlite:///{tmp_path_factory.mktemp('webdb') / 'web.db'}"])
    else:
        urls = postgres_schema_url(citus=request.param == "citus")
    url = migrated(next(urls), distributed=request.param == "citus")
    with repository.connect(url) as store:
        report = ingest(store, [f.path for f in web_files], workers=1)
    assert not report.skipped, report.skipped
    yield url
    for _ in urls:  # let the PostgreSQL generator drop its schema
        pass


@pytest.fixture(scope="module")
def server(web_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    """``dicom-repo serve --workers 2 --storage DIR`` on :func:`web_db`."""
    workdir = tmp_path_factory.mktemp("serve")
    running = start(web_db, workdir, workers=2, args=["--storage", str(workdir / "storage")])
    yield running
    running.stop()


@pytest.fixture(scope="module")
def client(server: WebServer) -> DICOMwebClient:
    """dicomweb-client pointed at the server."""
    return DICOMwebClient(server.dicomweb)

"""Start-up: ``dicom-repo ingest`` loads only what ingesting needs.

Each check runs in a fresh interpreter. The migration tool, the web server, the DICOMweb client,
the SQL formatter, the terminal toolkit and (for a SQLite URL) the PostgreSQL driver are never
imported on the way; whatever ``import pydicom`` loads by itself (numpy, and today requests) is
not ours to avoid, and is allowed.
"""

from __future__ import annotations

import json
import multiprocessing
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner
from conftest import PYDICOM_FILES

import repository
from repository import migrate
from repository.cli import ingest as cli_ingest
from repository.cli import main
from repository.engine import make_engine

NOT_FOR_INGEST = ("alembic", "mako", "psycopg", "requests", "dicomweb_client", "starlette",
                  "uvicorn", "python_multipart", "sqlparse", "rich")  # fmt: skip
"""Top-level packages that ``dicom-repo ingest --quiet`` has no use for."""

INGEST = """
import sys
from repository.cli import main
main(["--db", sys.argv[1], "ingest", sys.argv[2], "--quiet"], standalone_mode=False)
"""
REPORT = """
import json, sys
print(json.dumps(sorted(name for name in {names!r} if name in sys.modules)))
"""


def loaded(code: str, *args: str) -> tuple[set[str], str]:
    """Which of :data:`NOT_FOR_INGEST` are imported after ``code`` ran in a new interpreter,
    and what it printed."""
    script = code + REPORT.format(names=NOT_FOR_INGEST)
    done = subprocess.run([sys.executable, "-c", script, *args],
                          capture_output=True, text=True, check=True, timeout=120)  # fmt: skip
    *printed, names = done.stdout.splitlines()
    return set(json.loads(names)), "\n".join(printed)


def ingest_loads(url: str, folder: str) -> set[str]:
    """What ``dicom-repo --db URL ingest FOLDER --quiet`` (one new file) imports of them."""
    names, printed = loaded(INGEST, url, folder)
    assert printed.startswith("1 ingested,"), printed
    return names


@pytest.fixture(scope="module")
def pydicoms_own() -> set[str]:
    """What ``import pydicom`` alone imports of :data:`NOT_FOR_INGEST`."""
    return loaded("import pydicom")[0]


@pytest.fixture
def one_file(tmp_path: Path) -> str:
    folder = tmp_path / "files"
    folder.mkdir()
    shutil.copy(PYDICOM_FILES / "CT_small.dcm", folder)
    return str(folder)


@pytest.mark.sqlite
def test_ingest_on_sqlite_imports_no_migration_tool_driver_or_server(
    tmp_path: Path, one_file: str, pydicoms_own: set[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'startup.db'}"
    repository.connect(url).close()  # created and migrated: the command only checks the revision
    assert ingest_loads(url, one_file) - pydicoms_own == set()


@pytest.mark.postgresql
def test_ingest_on_postgresql_imports_its_driver_and_no_migration_tool(
    pg_empty_url: str, one_file: str, pydicoms_own: set[str]
) -> None:
    engine = make_engine(pg_empty_url)
    migrate.upgrade(engine)
    engine.dispose()
    assert ingest_loads(pg_empty_url, one_file) - pydicoms_own == {"psycopg"}


def test_importing_the_library_and_its_cli_imports_none_of_them(
    pydicoms_own: set[str],
) -> None:
    assert loaded("import repository, repository.cli")[0] - pydicoms_own == set()


def test_the_console_script_freezes_what_it_imported_so_exit_skips_collecting_it() -> None:
    script = """
import gc, sys
from repository.cli import run
sys.argv = ["dicom-repo", "--help"]
try:
    run()
except SystemExit:
    pass
print(gc.get_freeze_count())
"""
    done = subprocess.run([sys.executable, "-c", script],
                          capture_output=True, text=True, check=True, timeout=120)  # fmt: skip
    frozen = int(done.stdout.splitlines()[-1])
    assert frozen > 10_000, frozen  # the objects of SQLAlchemy, pydicom, click and ours


def test_what_ingest_imports_before_its_readers_start_holds_no_database_or_pydicom() -> None:
    code = "import repository.cli, repository.cli.ingest, repository.reading\n"
    script = code + "import sys; print(sorted(set(sys.argv[1:]) & set(sys.modules)))"
    heavy = ["sqlalchemy", "sqlalchemy.orm", "pydicom", "numpy", "psycopg"]
    done = subprocess.run([sys.executable, "-c", script, *heavy],
                          capture_output=True, text=True, check=True, timeout=120)  # fmt: skip
    assert done.stdout.strip() == "[]"


def test_ingest_starts_its_readers_before_it_opens_the_database(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The workers parse the first files while the command loads the database modules."""
    folder = tmp_path / "files"
    folder.mkdir()
    for name in ("CT_small.dcm", "MR_small.dcm", "JPEG2000.dcm"):
        shutil.copy(PYDICOM_FILES / name, folder)
    real, workers_seen = cli_ingest.open_store, []

    @contextmanager
    def watched(ctx: click.Context, **options: Any) -> Iterator[repository.Store]:
        workers_seen.append(len(multiprocessing.active_children()))
        with real(ctx, **options) as store:
            yield store

    monkeypatch.setattr(cli_ingest, "open_store", watched)
    args = ["--db", db_url, "ingest", str(folder), "--quiet", "--workers", "2"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("3 ingested"), result.output
    assert workers_seen == [2]

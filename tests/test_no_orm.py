"""The store is built on SQLAlchemy Core: importing it, ingesting and reading never load the ORM.

``sqlalchemy.orm`` costs tens of milliseconds of start-up; the schema is Core ``Table`` objects
and every statement runs on a connection, so nothing needs it. Each check runs in a fresh
interpreter.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import PYDICOM_FILES

ORM_LOADED = "\nimport sys\nprint('sqlalchemy.orm' in sys.modules)\n"

INGEST_AND_READ = """
import sys
import repository
from repository.cli import main
main(["--db", sys.argv[1], "ingest", sys.argv[2], "--quiet"], standalone_mode=False)
with repository.connect(sys.argv[1]) as store:
    [uid] = store.get_study_instance_uids()
    assert store.get_study(uid) is not None and store.get_study_summaries()
"""


def orm_loaded(code: str, *args: str) -> bool:
    """Whether ``sqlalchemy.orm`` is imported after ``code`` ran in a new interpreter."""
    done = subprocess.run([sys.executable, "-c", code + ORM_LOADED, *args],
                          capture_output=True, text=True, check=True, timeout=120)  # fmt: skip
    return done.stdout.splitlines()[-1] == "True"


def test_the_check_sees_the_orm_when_it_is_imported() -> None:
    assert orm_loaded("import sqlalchemy.orm")


@pytest.mark.parametrize(
    "module", ["repository.schema", "repository.store", "repository.migrate", "repository.cli"]
)
def test_importing_the_store_does_not_import_the_orm(module: str) -> None:
    assert not orm_loaded(f"import {module}")


def test_ingesting_and_reading_back_do_not_import_the_orm(db_url: str, tmp_path: Path) -> None:
    folder = tmp_path / "files"
    folder.mkdir()
    shutil.copy(PYDICOM_FILES / "CT_small.dcm", folder)
    assert not orm_loaded(INGEST_AND_READ, db_url, str(folder))

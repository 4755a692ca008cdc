"""Helpers and fixtures of the ``dicom-repo`` command-line tests (test_cli*.py): a runner, SQL
read with a connection of our own, four pydicom test files and a database holding them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
import pytest
from click.testing import CliRunner, Result
from conftest import PYDICOM_FILES
from sqlalchemy import inspect, text

from repository.cli import main
from repository.engine import make_engine


def run(url: str, *args: str) -> Result:
    """``dicom-repo --db URL ARGS...``; unexpected exceptions propagate to the test."""
    return CliRunner().invoke(main, ["--db", url, *args], catch_exceptions=False)


def sql(url: str, query: str) -> list[tuple[Any, ...]]:
    """Rows of ``query``, read with a connection of our own (not the CLI's)."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(text(query))]
    finally:
        engine.dispose()


def count(url: str, table: str) -> int:
    return int(sql(url, f'SELECT count(*) FROM "{table}"')[0][0])


def tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


@dataclass(frozen=True)
class DicomFile:
    """What pydicom itself says about one test file."""

    path: Path
    study: str
    series: str
    sop: str
    patient_name: str
    rows: int
    columns: int
    frames: int

    @classmethod
    def read(cls, name: str) -> DicomFile:
        path = (PYDICOM_FILES / name).resolve()  # imageIds hold resolved paths
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        return cls(path, ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID,
                   str(ds.PatientName), ds.Rows, ds.Columns,
                   int(ds.get("NumberOfFrames", 1)))  # fmt: skip


CT = DicomFile.read("CT_small.dcm")
MR = DicomFile.read("MR_small.dcm")
RTDOSE = DicomFile.read("rtdose.dcm")  # 15 frames
LONG_UIDS = DicomFile.read("SC_rgb_rle_2frame.dcm")  # 64-character Study Instance UID
FILES = (CT, MR, RTDOSE, LONG_UIDS)


@pytest.fixture
def ingested(db_url: str) -> str:
    """A database holding the four files above, ingested through the CLI."""
    result = run(db_url, "ingest", "--workers", "1", "--quiet", *(str(f.path) for f in FILES))
    assert result.exit_code == 0, result.output
    return db_url


# ------------------------------------------------------------------------------------------ db

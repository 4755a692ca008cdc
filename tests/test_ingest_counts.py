"""Ingest's per-file counts on both databases: every file in exactly one of ingested, already
present (stored before this ingest), duplicate (same instance as an earlier file of this
ingest) or skipped, whatever the batch boundaries."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import PYDICOM_FILES
from sqlalchemy import text

from repository import Store
from repository.cli import main
from repository.ingest import IngestReport, ingest

CT, MR = PYDICOM_FILES / "CT_small.dcm", PYDICOM_FILES / "MR_small.dcm"


def instances(store: Store) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM instance")).scalar_one())


def copy(source: Path, folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copyfile(source, folder / name))


def counts(report: IngestReport) -> tuple[int, int, int, int]:
    return report.ingested, report.already_present, report.duplicates, len(report.skipped)


@pytest.mark.parametrize("batch_size", [1, 2, 500])
def test_copies_of_a_new_instance_in_one_ingest_are_duplicates_not_already_present(
    store: Store, tmp_path: Path, batch_size: int
) -> None:
    files = [copy(CT, tmp_path, "a.dcm"), copy(MR, tmp_path, "b.dcm"),
             copy(CT, tmp_path, "c.dcm")]  # fmt: skip
    report = ingest(store, files, workers=1, batch_size=batch_size)
    assert counts(report) == (2, 0, 1, 0)
    assert report.summary() == "2 ingested, 0 already present, 0 skipped, 1 duplicates"
    assert instances(store) == 2


@pytest.mark.parametrize("batch_size", [1, 500])
def test_reingesting_a_folder_with_new_known_copied_and_bad_files_counts_each_file_once(
    store: Store, tmp_path: Path, batch_size: int
) -> None:
    assert counts(ingest(store, [CT], workers=1)) == (1, 0, 0, 0)
    folder = tmp_path / "folder"
    copy(CT, folder, "1-known.dcm")
    copy(CT, folder, "2-known-again.dcm")
    copy(MR, folder, "3-new.dcm")
    copy(MR, folder, "4-new-copy.dcm")
    (folder / "5-bad.dcm").write_bytes(b"not DICOM")
    report = ingest(store, [folder], workers=1, batch_size=batch_size)
    assert counts(report) == (1, 2, 1, 1)
    assert report.summary() == "1 ingested, 2 already present, 1 skipped, 1 duplicates"
    assert instances(store) == 2


def test_the_same_path_twice_in_one_batch_is_one_instance_and_one_duplicate(
    store: Store, tmp_path: Path
) -> None:
    ct = copy(CT, tmp_path, "ct.dcm")
    assert counts(ingest(store, [ct, ct], workers=1)) == (1, 0, 1, 0)
    assert counts(ingest(store, [ct, ct], workers=1)) == (0, 2, 0, 0)
    assert instances(store) == 1


def test_ingest_prints_the_exact_summary_line(db_url: str, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    copy(CT, folder, "a.dcm")
    copy(CT, folder, "b.dcm")
    copy(MR, folder, "c.dcm")
    args = ["--db", db_url, "ingest", "--quiet", "--workers", "2", str(folder)]
    first = CliRunner().invoke(main, args, catch_exceptions=False)
    assert first.exit_code == 0, first.output
    assert first.output.splitlines()[-1] == "2 ingested, 0 already present, 0 skipped, 1 duplicates"
    again = CliRunner().invoke(main, args, catch_exceptions=False)
    assert again.output.splitlines()[-1] == "0 ingested, 3 already present, 0 skipped"

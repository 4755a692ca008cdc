"""The pytest plugin users get with the package: ``dicom_store`` and ``dicom_factory``.

The fixtures are used here directly (SQLite, their default) and in inner pytest sessions run
the way a user runs them, on SQLite and on PostgreSQL (a schema per test, dropped afterwards),
with and without pytest-xdist.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
import pydicom
import pytest
from conftest import PG_URL, _libpq_dsn, _pg_error

import repository
from repository.ingest import ingest
from repository.testing import DicomFactory

USER_TEST = """
import os

def test_mine(dicom_store, dicom_factory):
    dicom_store.add_instances(dicom_factory.study(modalities=("CT", "SEG"), series=2))
    assert len(dicom_store.get_study_instance_uids()) == 1
    with open(os.environ["SEEN_FILE"], "a") as seen:
        seen.write(dicom_store.dialect + " " + str(dicom_store.engine.url.query) + "\\n")

def test_isolated(dicom_store):
    assert dicom_store.get_study_instance_uids() == []
"""


def test_a_factory_study_lands_in_a_fresh_store_with_derived_series_referencing_the_images(
    dicom_store: repository.Store, dicom_factory: DicomFactory
) -> None:
    instances = dicom_factory.study(modalities=("CT", "SEG"), series=3, instances=40)
    assert dicom_store.get_study_instance_uids() == []
    result = dicom_store.add_instances(instances)
    assert result.added == 3 * 40 + 1
    (study_uid,) = dicom_store.get_study_instance_uids()
    study = dicom_store.get_study(study_uid)
    assert study is not None
    assert [len(s.instances) for s in study.series] == [40, 40, 40, 1]
    display_sets = dicom_store.get_display_sets(study_uid)
    ct = [d for d in display_sets if d.modality == "CT"]
    seg = [d for d in display_sets if d.modality == "SEG"]
    assert len(ct) == 3 and all(d.is_reconstructable for d in ct)
    assert seg[0].referenced_series_instance_uid == study.series[0].series_instance_uid


def test_every_modality_of_the_factory_is_stored_with_its_sop_class(
    dicom_store: repository.Store, dicom_factory: DicomFactory
) -> None:
    for modality in ("CT", "MR", "PT", "CR", "DX", "MG", "US", "OT", "SR", "SEG"):
        dicom_store.add_instances(dicom_factory.study(modalities=(modality,), instances=2))
    modalities = {
        s.modality: {i.sop_class_uid for i in s.instances}
        for uid in dicom_store.get_study_instance_uids()
        for s in dicom_store.get_study(uid).series  # type: ignore[union-attr]
    }
    assert modalities["SR"] == {pydicom.uid.ComprehensiveSRStorage}
    assert modalities["SEG"] == {pydicom.uid.SegmentationStorage}
    assert modalities["MG"] == {pydicom.uid.DigitalMammographyXRayImageStorageForPresentation}
    assert len(dicom_store.get_study_instance_uids()) == 10


def test_factory_files_are_part_10_files_with_real_pixels_that_ingest_stores(
    dicom_store: repository.Store, dicom_factory: DicomFactory, tmp_path: Path
) -> None:
    paths = dicom_factory.files(tmp_path, ("MR", "SR"), series=2, instances=5)
    assert len(paths) == 11
    first = pydicom.dcmread(paths[0])
    assert first.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    assert first.pixel_array.std() > 0
    report = ingest(dicom_store, [tmp_path], workers=1)
    assert (report.ingested, report.skipped) == (11, [])


def test_the_factory_refuses_a_modality_it_cannot_make(dicom_factory: DicomFactory) -> None:
    with pytest.raises(ValueError, match="cannot make"):
        dicom_factory.study(modalities=("XA",))


@pytest.mark.parametrize("xdist", [False, True], ids=["serial", "xdist"])
@pytest.mark.parametrize(
    "backend", ["sqlite", "sqlite-url", pytest.param("postgresql", marks=pytest.mark.postgresql)]
)
def test_a_users_three_line_test_runs_isolated_on_each_database(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, backend: str, xdist: bool
) -> None:
    if backend == "postgresql" and _pg_error:
        pytest.skip(f"PostgreSQL unreachable: {_pg_error}")
    monkeypatch.setenv("SEEN_FILE", str(pytester.path / "seen.txt"))
    pytester.makepyfile(test_user=USER_TEST)
    args = ["-p", "no:cacheprovider", *(["-n", "2"] if xdist else [])]
    if backend == "postgresql":
        args += ["--dicom-repo-db", PG_URL]
    if backend == "sqlite-url":
        args += ["--dicom-repo-db", f"sqlite:///{pytester.path / 'mine.db'}"]
    result = pytester.runpytest_subprocess(*args)
    result.assert_outcomes(passed=2)
    seen = (pytester.path / "seen.txt").read_text()
    assert seen.startswith(backend.split("-")[0])
    assert not list(pytester.path.glob("dicom_store_*")), "a per-test SQLite file was left"
    if backend == "postgresql":
        schema = seen.split("search_path=")[1].split("'")[0].split()[0]
        with psycopg.connect(_libpq_dsn(PG_URL)) as conn:
            left = conn.execute(
                "SELECT count(*) FROM pg_namespace WHERE nspname = %s", [schema]
            ).fetchone()
        assert left == (0,), f"schema {schema} was not dropped"

"""The real OHIF Viewer 3.13.2 in headless Chromium opens our studies and draws their images.

The same harness runs against Orthanc (proving the harness: what OHIF needs from a DICOMweb
server it gets there) and against ``dicom-repo serve`` on SQLite and PostgreSQL. For each it
opens the study list, then a CT, an MR and a JPEG 2000 MR study from it (as a user clicks),
and asserts that a cornerstone viewport holds the image and that its canvas shows the file's
grey levels under each image pixel (not a flat or noisy canvas, not another image), with no
error notification and every DICOMweb request answered 2xx. Screenshots and the server's log
are kept in ``test-artifacts/ohif/`` (or ``$DICOM_REPO_TEST_ARTIFACTS``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pydicom
import pytest
from conftest import PYDICOM_FILES
from ohif import (
    Session,
    ViewerUnavailable,
    back_to_list,
    browser,
    display_correlation,
    error_notifications,
    image_region,
    neighbour_correlation,
    open_from_list,
    study_list_rows,
    viewer_dist,
    viewer_page,
)
from orthanc import Orthanc, OrthancUnavailable, UploadedFile, find_orthanc, read_test_file
from pydicom.uid import generate_uid
from viewer_proxy import proxy_app, serve_in_thread, serve_repository

ARTIFACTS = Path(
    os.environ.get("DICOM_REPO_TEST_ARTIFACTS") or Path(__file__).parents[1] / "test-artifacts"
)


def _unavailable(error: Exception) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"CI is set but the OHIF viewer test cannot run: {error}")
    pytest.skip(f"OHIF viewer unavailable: {error}")


@pytest.fixture(scope="session")
def ohif_dist() -> Path:
    """The cached OHIF Viewer ``dist/`` (fails under CI, skipped loudly elsewhere if missing)."""
    try:
        return viewer_dist()
    except ViewerUnavailable as error:
        _unavailable(error)
        raise


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """One headless Chromium for this module's tests, stopped after them: playwright's sync API
    keeps an event loop running in the main thread while it is open, where later tests run
    their own (``anyio.run``)."""
    try:
        with browser() as opened:
            yield opened
    except ViewerUnavailable as error:
        _unavailable(error)


@dataclass(frozen=True)
class ViewerStudy:
    """A one-image study the viewer must show, and the pixels it must show for it."""

    file: UploadedFile
    label: str
    pixels: np.ndarray

    @property
    def listed_name(self) -> str:
        """The patient's name as OHIF's study list writes it ("Family, Given")."""
        name = pydicom.dcmread(self.file.path, stop_before_pixels=True).PatientName
        return f"{name.family_name}, {name.given_name}"


def _as_own_study(source: Path, target: Path, patient: str) -> Path:
    """``source`` re-identified as a study of its own (new UIDs, patient), pixels untouched."""
    ds = pydicom.dcmread(source)
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
        setattr(ds, keyword, generate_uid(entropy_srcs=[patient, keyword]))
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.PatientName, ds.PatientID = f"CompressedSamples^{patient}", patient
    ds.save_as(target)
    return target


@pytest.fixture(scope="session")
def studies(tmp_path_factory: pytest.TempPathFactory) -> list[ViewerStudy]:
    """A CT, an MR and the same MR stored as JPEG 2000 (lossless) in a study of its own.

    The compressed one reaches the viewer as encapsulated frames: it is drawn right only if
    the frame part names its transfer syntax (OHIF decodes it as raw pixels otherwise).
    """
    ct, mr = PYDICOM_FILES / "CT_small.dcm", PYDICOM_FILES / "MR_small.dcm"
    j2k = _as_own_study(
        PYDICOM_FILES / "MR_small_jp2klossless.dcm",
        tmp_path_factory.mktemp("ohif-files") / "MR_small_j2k.dcm",
        "J2K1",
    )
    return [
        ViewerStudy(read_test_file(ct), "CT", pydicom.dcmread(ct).pixel_array),
        ViewerStudy(read_test_file(mr), "MR", pydicom.dcmread(mr).pixel_array),
        ViewerStudy(read_test_file(j2k), "MR-J2K", pydicom.dcmread(mr).pixel_array),
    ]


@pytest.fixture(scope="session")
def orthanc_viewer(
    tmp_path_factory: pytest.TempPathFactory, ohif_dist: Path, studies: list[ViewerStudy]
) -> Iterator[str]:
    """OHIF in front of a real Orthanc holding the test files (through a same-origin proxy)."""
    try:
        install = find_orthanc()
    except OrthancUnavailable as error:
        _unavailable(error)
    orthanc = Orthanc("ohif", tmp_path_factory.mktemp("orthanc-ohif"), *install).start()
    try:
        for study in studies:
            assert orthanc.upload(study.file.path) == "Success"
        with serve_in_thread(proxy_app(ohif_dist, orthanc.dicomweb)) as base_url:
            yield base_url
    finally:
        orthanc.stop()


@pytest.fixture
def repo_viewer(db_url: str, ohif_dist: Path, studies: list[ViewerStudy]) -> Iterator[str]:
    """``dicom-repo serve`` (2 workers) with the viewer, on a database holding the test files."""
    cli = [str(Path(sys.executable).with_name("dicom-repo")), "--db", db_url]
    paths = [str(study.file.path) for study in studies]
    subprocess.run([*cli, "ingest", "-q", "--workers", "1", *paths], check=True, timeout=120)
    log = _artifact(f"serve-{db_url.split(':', 1)[0]}").with_suffix(".log")
    with serve_repository(cli, ohif_dist, log) as base_url:
        yield base_url


def _artifact(name: str) -> Path:
    folder = ARTIFACTS / "ohif"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{name}.png"


def _assert_drawn(canvas: np.ndarray, where: str) -> None:
    """The canvas shows an image with real grey levels: structured, neither flat nor noise."""
    region = image_region(canvas)
    assert region.shape[0] >= 100 and region.shape[1] >= 100, f"{where}: no image on the canvas"
    levels = np.unique(region).size
    assert region.std() > 10 and levels > 32, f"{where}: flat canvas ({levels} grey levels)"
    correlation = neighbour_correlation(region)
    assert correlation > 0.8, f"{where}: canvas looks like noise (r={correlation:.2f})"


def _assert_shows(shown: np.ndarray, stored: np.ndarray, where: str) -> None:
    """The grey levels under the image's pixels follow the stored pixel values."""
    assert shown.shape == stored.shape, f"{where}: {shown.shape} shown, {stored.shape} stored"
    correlation, fraction = display_correlation(stored, shown)
    print(f"{where}: r={correlation:.3f} on {fraction:.0%} of the pixels")
    assert fraction > 0.25, f"{where}: only {fraction:.0%} of the image is shown in grey levels"
    assert correlation > 0.95, f"{where}: canvas unlike the stored pixels (r={correlation:.2f})"


def check_viewer(chromium: Any, base_url: str, studies: list[ViewerStudy], name: str) -> Session:
    """Open the study list, then each study; assert what a user would see.

    A failure carries every DICOMweb exchange of the page and a screenshot of the moment.
    """
    with viewer_page(chromium) as (page, session):
        try:
            _walk_through(page, base_url, studies, name)
        except Exception as error:
            page.screenshot(path=_artifact(f"{name}-failure"))
            raise AssertionError(f"{error}\n--- DICOMweb exchanges:\n{session.report()}") from error
        assert session.exchanges and not session.failed(), session.report()
        return session


def _walk_through(page: Any, base_url: str, studies: list[ViewerStudy], name: str) -> None:
    rows = "\n".join(study_list_rows(page, base_url, len(studies)))
    page.screenshot(path=_artifact(f"{name}-study-list"))
    for study in studies:
        assert study.listed_name in rows and str(study.file.modality) in rows, rows
    for index, study in enumerate(studies):
        uids, where = study.file, f"{name} {study.label} {study.file.study}"
        if index:
            back_to_list(page, len(studies))
        rendered = open_from_list(page, study.listed_name, uids.study)
        page.screenshot(path=_artifact(f"{name}-{study.label}"))
        assert uids.study in rendered.image_id and uids.sop in rendered.image_id, where
        assert rendered.dimensions[:2] == [uids.columns, uids.rows], where
        _assert_drawn(rendered.canvas, where)
        _assert_shows(rendered.under_pixels, study.pixels, where)
        assert not error_notifications(page), f"{where}: {error_notifications(page)}"


def test_ohif_draws_repository_studies(
    chromium: Any, repo_viewer: str, studies: list[ViewerStudy], db_url: str
) -> None:
    """OHIF served by ``dicom-repo serve`` shows the study list and draws each study; once a
    study is deleted (DICOMweb DELETE), the study list no longer shows it."""
    backend = db_url.split(":", 1)[0]
    session = check_viewer(chromium, repo_viewer, studies, f"repository-{backend}")
    print(session.report())
    gone, kept = studies[0], studies[1:]
    deleted = httpx.delete(f"{repo_viewer}/dicom-web/studies/{gone.file.study}", timeout=60)
    assert deleted.status_code == 204, deleted.text
    with viewer_page(chromium) as (page, after):
        rows = study_list_rows(page, repo_viewer, len(kept))
        page.screenshot(path=_artifact(f"repository-{backend}-after-delete"))
        assert len(rows) == len(kept), rows
        assert not any(gone.listed_name in row for row in rows), rows
        assert all(any(study.listed_name in row for row in rows) for study in kept), rows
        assert not after.failed(), after.report()


def test_ohif_draws_orthanc_studies(
    chromium: Any, orthanc_viewer: str, studies: list[ViewerStudy]
) -> None:
    """The harness itself: OHIF in front of Orthanc shows the study list and draws each study."""
    session = check_viewer(chromium, orthanc_viewer, studies, "orthanc")
    print(session.report())

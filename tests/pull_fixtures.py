"""Fixtures and helpers of the DICOMweb pull tests (test_dicomweb_pull*.py): Orthanc servers
holding the pydicom test files, and checks of what a pull stored against those files."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from orthanc import (
    Orthanc,
    OrthancUnavailable,
    UploadedFile,
    consistent_selection,
    find_orthanc,
)
from sqlalchemy import inspect, text

from repository import Store
from repository.cli import main
from repository.engine import make_engine
from repository.image_id import wadors_image_id
from repository.reading import sample_files

SR_CLASSES = ("1.2.840.10008.5.1.4.1.1.88.",)  # every Structured Report storage class
PASSWORD = "pa55-w0rd-XYZ"  # never to be seen outside the HTTP requests
FILE_META = ("FileMetaInformation", "Implementation", "MediaStorage", "SourceApplication")


# ---------------------------------------------------------------------------------- servers


@pytest.fixture(scope="session")
def orthanc_install() -> tuple[str, str]:
    """The Orthanc binary and DICOMweb plugin; skipped, loudly, outside CI if unavailable."""
    try:
        return find_orthanc()
    except OrthancUnavailable as error:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but Orthanc is unavailable: {error}")
        pytest.skip(f"Orthanc unavailable: {error}")


@dataclass
class Server:
    """A running Orthanc and the files it holds."""

    orthanc: Orthanc
    files: list[UploadedFile] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.orthanc.dicomweb

    def by_name(self, name: str) -> UploadedFile:
        return next(f for f in self.files if f.path.name == name)

    def largest_study(self) -> list[UploadedFile]:
        """The files of the study with the most series."""
        series: dict[str, set[str]] = {}
        for f in self.files:
            series.setdefault(f.study, set()).add(f.series)
        uid = max(series, key=lambda study: (len(series[study]), study))
        return [f for f in self.files if f.study == uid]

    def study(self, name: str) -> list[UploadedFile]:
        """The uploaded files of the study that file ``name`` belongs to."""
        uid = self.by_name(name).study
        return [f for f in self.files if f.study == uid]


@pytest.fixture(scope="session")
def orthancs() -> Iterator[list[Orthanc]]:
    """The Orthanc servers started by this session, stopped together at its end."""
    started: list[Orthanc] = []
    yield started
    for orthanc in started:
        orthanc.terminate()  # all at once: each takes a few seconds to stop
    for orthanc in started:
        orthanc.stop()


def _serve(
    tmp: pytest.TempPathFactory, install: tuple[str, str], pool: list[Orthanc], name: str,
    files: list[UploadedFile], users: dict[str, str] | None = None,
) -> Server:  # fmt: skip
    orthanc = Orthanc(name, tmp.mktemp(name), *install, users=users or {})
    pool.append(orthanc)
    orthanc.start()
    return Server(orthanc, [f for f in files if orthanc.upload(f.path) is not None])


@pytest.fixture(scope="session")
def selection() -> list[UploadedFile]:
    """The pydicom test files that keep the DICOM model whole (Orthanc needs that)."""
    return consistent_selection(sample_files())


@pytest.fixture(scope="session")
def server_a(
    tmp_path_factory: pytest.TempPathFactory,
    orthanc_install: tuple[str, str],
    orthancs: list[Orthanc],
    selection: list[UploadedFile],
) -> Server:
    """An Orthanc holding every file of the selection it accepts."""
    server = _serve(tmp_path_factory, orthanc_install, orthancs, "a", selection)
    assert len(server.files) >= 30, "too few files accepted"
    assert len({f.study for f in server.files}) >= 5
    assert any((f.frames or 1) > 1 for f in server.files), "no multi-frame instance"
    assert any(f.sop_class.startswith(SR_CLASSES) for f in server.files), "no SR"
    return server


@pytest.fixture(scope="session")
def server_b(
    tmp_path_factory: pytest.TempPathFactory,
    orthanc_install: tuple[str, str],
    orthancs: list[Orthanc],
    selection: list[UploadedFile],
) -> Server:
    """A second Orthanc holding the CT_small and MR_small studies."""
    wanted = {f.study for f in selection if f.path.name in ("CT_small.dcm", "MR_small.dcm")}
    chosen = [f for f in selection if f.study in wanted]
    return _serve(tmp_path_factory, orthanc_install, orthancs, "b", chosen)


@pytest.fixture(scope="session")
def server_auth(
    tmp_path_factory: pytest.TempPathFactory,
    orthanc_install: tuple[str, str],
    orthancs: list[Orthanc],
    selection: list[UploadedFile],
) -> Server:
    """An Orthanc that wants HTTP basic authentication, holding the CT_small study."""
    study = next(f.study for f in selection if f.path.name == "CT_small.dcm")
    chosen = [f for f in selection if f.study == study]
    return _serve(
        tmp_path_factory, orthanc_install, orthancs, "auth", chosen, users={"alice": PASSWORD}
    )


# ---------------------------------------------------------------------------------- helpers


def stored_instances(store: Store, data_source: str) -> dict[str, Any]:
    """SOP Instance UID -> stored Instance, over the series lists named ``data_source``."""
    found: dict[str, Any] = {}
    for uid in store.get_study_instance_uids():
        study = store.get_study(uid)
        assert study is not None
        for series_list in study.series_lists:
            if series_list.data_source != data_source:
                continue
            for series in series_list.series:
                for inst in series.instances:
                    assert inst.sop_instance_uid not in found, "instance stored twice"
                    found[inst.sop_instance_uid] = inst
    return found


def instance_rows(url: str) -> int:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM instance")).scalar_one())
    finally:
        engine.dispose()


def database_text(url: str) -> str:
    """Every row of every table as text, plus the raw bytes of a SQLite file."""
    engine = make_engine(url)
    parts = []
    try:
        with engine.connect() as conn:
            for table in inspect(conn).get_table_names():
                rows = conn.execute(text(f'SELECT * FROM "{table}"')).all()
                parts.append(repr([tuple(row) for row in rows]))
    finally:
        engine.dispose()
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        for file in (path, Path(f"{path}-wal")):
            if file.exists():
                parts.append(file.read_bytes().decode("latin-1"))
    return "\n".join(parts)


def check_against_files(store: Store, name: str, files: list[UploadedFile], root: str) -> None:
    """The store's series lists ``name`` hold exactly ``files``, as pydicom reads them."""
    stored = stored_instances(store, name)
    assert sorted(stored) == sorted(f.sop for f in files)
    for f in files:
        inst = stored[f.sop]
        where = f.path.name
        assert (inst.study_instance_uid, inst.series_instance_uid) == (f.study, f.series), where
        assert inst.sop_class_uid == f.sop_class, where
        assert inst.instance_number == f.instance_number, where
        assert (inst.rows, inst.columns) == (f.rows, f.columns), where
        assert inst.number_of_frames == f.frames, where
        assert inst.metadata.get("Modality") == f.modality, where
        assert inst.metadata["SOPInstanceUID"] == f.sop, where
        assert inst.image_id == wadors_image_id(root, f.study, f.series, f.sop), where
        assert (inst.data_source, inst.wado_root) == (name, root), where


def run(url: str, *args: str) -> Result:
    return CliRunner().invoke(main, ["--db", url, *args], catch_exceptions=False)

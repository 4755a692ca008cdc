"""Real Orthanc servers (with the DICOMweb plugin) for the DICOMweb tests.

Each server runs on loopback with a free HTTP port, its DICOM port off, remote access off, and
its storage in a temporary folder; it is stopped when the tests are done. Orthanc comes from
Debian (``apt-get install orthanc orthanc-dicomweb``): under CI ``.ci/run`` installs it, elsewhere
:func:`find_orthanc` installs it if it can (as root, with apt-get) and otherwise says why not.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import time
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
import requests

PACKAGES = ("orthanc", "orthanc-dicomweb")
PLUGIN_GLOBS = (
    "/usr/share/orthanc/plugins/libOrthancDicomWeb.so*",
    "/usr/lib/orthanc/plugins/libOrthancDicomWeb.so*",
    "/usr/local/share/orthanc/plugins/libOrthancDicomWeb.so*",
)


class OrthancUnavailable(RuntimeError):
    """Orthanc or its DICOMweb plugin is not installed and cannot be installed here."""


def _locate() -> tuple[str, str] | None:
    binary = shutil.which("Orthanc") or next(
        (p for p in ("/usr/sbin/Orthanc", "/usr/bin/Orthanc") if os.access(p, os.X_OK)), None
    )
    plugin = next((str(p) for g in PLUGIN_GLOBS for p in sorted(Path("/").glob(g[1:]))), None)
    return (binary, plugin) if binary and plugin else None


def find_orthanc() -> tuple[str, str]:
    """The Orthanc executable and its DICOMweb plugin, installing them with apt-get if needed.

    Under CI nothing is installed here (``.ci/run`` does it before the tests).
    """
    found = _locate()
    if found:
        return found
    if os.environ.get("CI"):
        raise OrthancUnavailable(
            f"Orthanc with its DICOMweb plugin is not installed ({' '.join(PACKAGES)}); "
            ".ci/run installs it before the tests"
        )
    if not shutil.which("apt-get") or os.geteuid() != 0:
        raise OrthancUnavailable(
            f"Orthanc is not installed and this is not a root Debian machine: "
            f"run `apt-get install {' '.join(PACKAGES)}`"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *PACKAGES]
    result = subprocess.run(install, env=env, capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, timeout=600)
        result = subprocess.run(install, env=env, capture_output=True, text=True, timeout=900)
    found = _locate()
    if not found and result.returncode == 0:
        raise OrthancUnavailable("installed, but Orthanc or its DICOMweb plugin is not found")
    if not found:
        detail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise OrthancUnavailable(f"`{' '.join(install)}` failed: {detail[0]}")
    return found


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Orthanc:
    """One running Orthanc server; ``dicomweb`` is its DICOMweb root URL."""

    name: str
    workdir: Path
    binary: str
    plugin: str
    users: Mapping[str, str] = field(default_factory=dict)
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The REST API root."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def dicomweb(self) -> str:
        """The DICOMweb (QIDO-RS / WADO-RS) root."""
        return f"{self.url}/dicom-web"

    def auth_header(self) -> dict[str, str]:
        """``Authorization: Basic ...`` for the first registered user (empty without users)."""
        if not self.users:
            return {}
        user, password = next(iter(self.users.items()))
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        return {"Authorization": f"Basic {token}"}

    def config(self) -> dict[str, object]:
        storage = self.workdir / "storage"
        return {
            "Name": self.name,
            "StorageDirectory": str(storage),
            "IndexDirectory": str(storage),
            "HttpPort": self.port,
            "DicomServerEnabled": False,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": bool(self.users),
            "RegisteredUsers": dict(self.users),
            "HttpCompressionEnabled": False,
            "SaveJobs": False,
            "Plugins": [self.plugin],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": False},
        }

    def start(self, timeout: float = 30.0) -> Orthanc:
        """Start the server (on a fresh free port; retried if the port was taken meanwhile)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        last = ""
        for _attempt in range(3):
            self.port = free_port()
            config = self.workdir / "orthanc.json"
            config.write_text(json.dumps(self.config(), indent=2))
            log = (self.workdir / "orthanc.log").open("wb")
            self.process = subprocess.Popen(
                [self.binary, str(config)],
                cwd=self.workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
            log.close()
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.process.poll() is None:
                try:
                    response = requests.get(
                        f"{self.url}/system", headers=self.auth_header(), timeout=2
                    )
                    if response.ok:
                        return self
                except requests.RequestException:
                    pass
                time.sleep(0.05)
            self.stop()
            last = (self.workdir / "orthanc.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"Orthanc {self.name} did not start; its log ends with:\n{last}")

    def terminate(self) -> None:
        """Ask the server to stop (it takes a few seconds); :meth:`stop` waits for it."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()

    def stop(self) -> None:
        """Stop the server (terminate, then kill after 10 s)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None

    def upload(self, path: Path) -> str | None:
        """POST one file to /instances; Orthanc's status (``Success``, ...), None if refused."""
        response = requests.post(
            f"{self.url}/instances", data=path.read_bytes(), headers=self.auth_header(), timeout=30
        )
        if response.status_code == 400:  # not DICOM enough for Orthanc (truncated files)
            return None
        response.raise_for_status()
        return str(response.json()["Status"])


@dataclass(frozen=True)
class UploadedFile:
    """What pydicom itself reads from one uploaded file."""

    path: Path
    study: str
    series: str
    sop: str
    sop_class: str
    modality: str | None
    instance_number: int | None
    rows: int | None
    columns: int | None
    frames: int | None


def _int(value: object) -> int | None:
    return None if value in (None, "") else int(str(value))


def read_test_file(path: Path) -> UploadedFile:
    """Key attributes of a file, as pydicom reads them."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
    return UploadedFile(
        path=path,
        study=str(ds.StudyInstanceUID),
        series=str(ds.SeriesInstanceUID),
        sop=str(ds.SOPInstanceUID),
        sop_class=str(ds.SOPClassUID),
        modality=ds.get("Modality") or None,
        instance_number=_int(ds.get("InstanceNumber")),
        rows=_int(ds.get("Rows")),
        columns=_int(ds.get("Columns")),
        frames=_int(ds.get("NumberOfFrames")),
    )


def consistent_selection(paths: Iterable[Path]) -> list[UploadedFile]:
    """Files that keep the DICOM model whole: each SOP instance once, each study under one
    patient, each series in one study (Orthanc refuses to serve a series that breaks it)."""
    chosen: list[UploadedFile] = []
    sops: set[str] = set()
    study_patient: dict[str, str] = {}
    series_study: dict[str, str] = {}
    for path in paths:
        try:
            info = read_test_file(path)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                patient = str(pydicom.dcmread(path, specific_tags=["PatientID"]).get("PatientID"))
        except Exception:
            continue
        if info.sop in sops or study_patient.get(info.study, patient) != patient:
            continue
        if series_study.get(info.series, info.study) != info.study:
            continue
        sops.add(info.sop)
        study_patient[info.study] = patient
        series_study[info.series] = info.study
        chosen.append(info)
    return chosen

"""Frames of a large multi-frame instance from ``dicom-repo serve``, against a single-frame one.

A multi-frame instance of ``--frames`` frames of 512 x 512 x 16 bit (native: 0.5 MB a frame,
200 MB for 400 frames), an encapsulated one (stored as JPEG baseline: frames of 100 KB, sent as
stored, never decoded) and a single-frame instance of each kind, ingested into a scratch
database; one server worker, one client asking as OHIF does (``transfer-syntax=*``, one
frame a request, going through the frames in turn):

- ``serve-frames-native`` / ``serve-frames-encapsulated``: frames per second from the multi-frame
  instance, against the baseline, the frame of a single-frame instance stored the same way per
  second (a frame of a large instance should cost what a frame of a small one costs: ratio
  near 1);
- ``rss_before_mb`` / ``rss_after_mb``: the worker's resident memory before and after.

Each figure is the median of three rounds of ``--requests`` requests; ``load`` is the 1-minute
load average (the machine is shared).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import requests
from pydicom import uid
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import generate_uid

import repository
from repository.ingest import ingest

from .common import emit, scratch
from .serve_load import rss_mb
from .server import NO_GZIP, serving

RAW = {**NO_GZIP, "Accept": 'multipart/related; type="application/octet-stream"; transfer-syntax=*'}
SIDE = 512


def _instance(frames: int, encapsulated: bool) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    syntax = uid.JPEGBaseline8Bit if encapsulated else uid.ExplicitVRLittleEndian
    ds.file_meta.TransferSyntaxUID = syntax
    ds.SOPClassUID = uid.MultiFrameGrayscaleWordSecondaryCaptureImageStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientID, ds.Modality, ds.InstanceNumber = "BENCH", "OT", 1
    ds.Rows = ds.Columns = SIDE
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.NumberOfFrames = frames
    rng = np.random.default_rng(7)
    if encapsulated:
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
        ds.PixelData = encapsulate([rng.bytes(100_000) for _ in range(frames)], has_bot=True)
        ds["PixelData"].VR = "OB"
    else:
        ds.PixelData = rng.integers(0, 4096, (frames, SIDE, SIDE), dtype="<u2").tobytes()
    return ds


def _per_second(fn: Callable[[int], object], count: int) -> float:
    fn(1)
    rounds = []
    for _ in range(3):
        start = time.perf_counter()
        for n in range(count):
            fn(n)
        rounds.append(count / (time.perf_counter() - start))
    return statistics.median(rounds)


def _getter(session: requests.Session, root: str, ds: Dataset) -> Callable[[int], int]:
    base = (f"{root}/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
            f"/instances/{ds.SOPInstanceUID}/frames/")  # fmt: skip
    frames = int(ds.NumberOfFrames)

    def get(n: int) -> int:
        answer = session.get(f"{base}{n % frames + 1}", headers=RAW)
        answer.raise_for_status()
        return len(answer.content)

    return get


def run(url: str, frames: int = 400, count: int = 100) -> None:
    """Frames/s of a multi-frame instance (native, encapsulated) vs a single-frame one."""
    made = {f"{kind}{n}": _instance(n, kind == "encapsulated")
            for kind in ("native", "encapsulated") for n in (frames, 1)}  # fmt: skip
    with tempfile.TemporaryDirectory() as folder, scratch(url, "bench_frames") as scoped:
        paths = []
        for name, ds in made.items():
            paths.append(Path(folder) / f"{name}.dcm")
            ds.save_as(paths[-1], enforce_file_format=True)
        with repository.connect(scoped) as store:
            ingest(store, paths, workers=1)
        with serving(scoped) as root, requests.Session() as session:
            first = session.get(root + "/studies?limit=1")
            worker = first.headers["X-Dicom-Repo-Worker"]
            for kind in ("native", "encapsulated"):
                single = _per_second(_getter(session, root, made[f"{kind}1"]), count)
                before = rss_mb(worker)
                rate = _per_second(_getter(session, root, made[f"{kind}{frames}"]), count)
                emit(f"serve-frames-{kind}", url, rate, "frames/s", single, rate / single,
                     frames=frames, size=os.path.getsize(Path(folder) / f"{kind}{frames}.dcm"),
                     rss_before_mb=before, rss_after_mb=rss_mb(worker),
                     load=round(os.getloadavg()[0], 2))  # fmt: skip

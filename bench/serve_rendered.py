"""Rendered frames per second of ``dicom-repo serve`` for a 512 x 512 CT, next to raw frames.

pydicom-data's 693 CT (512 x 512, 16 bit, with a window), uncompressed (``693_UNCR.dcm``) and
JPEG 2000 lossless (``693_J2KR.dcm``), ingested into a scratch database; one server worker, one
client asking for the same frame in turn:

- ``serve-rendered``: ``.../frames/1/rendered`` (JPEG, quality 90) per second, against the raw
  frame endpoint (``.../frames/1``, ``transfer-syntax=*``, the stored bytes) per second, the
  faster of asked with ``Accept-Encoding: identity`` (``raw_identity``) and with requests'
  default ``gzip`` (``raw_gzip``: the server compresses the frame); extra:
  PNG, ``window=``, the JPEG 2000 copy rendered, and ``inprocess`` (pydicom's ``pixel_array``,
  ``apply_modality_lut``, ``apply_voi_lut`` and Pillow's JPEG in this process, no HTTP: what
  rendering itself costs).

Each figure is the median of three rounds of ``--requests`` requests; the machine is shared, so
the 1-minute load average is given (``load``).
"""

from __future__ import annotations

import io
import os
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import requests
from PIL import Image
from pydicom.pixels import apply_modality_lut, apply_voi_lut
from pydicom.uid import generate_uid

import repository
from repository.ingest import ingest

from .common import emit, scratch
from .server import serving

RAW = {"Accept": 'multipart/related; type="application/octet-stream"; transfer-syntax=*'}


def _files() -> list[Path]:
    import data_store  # type: ignore[import-untyped]  # pydicom-data

    folder = Path(data_store.__file__).parent / "data"
    return [folder / "693_UNCR.dcm", folder / "693_J2KR.dcm"]


def _per_second(fn: Callable[[], object], count: int) -> float:
    fn()
    rounds = []
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(count):
            fn()
        rounds.append(count / (time.perf_counter() - start))
    return statistics.median(rounds)


def _getter(session: requests.Session, url: str, **kwargs: object) -> Callable[[], int]:
    def get() -> int:
        answer = session.get(url, **kwargs)  # type: ignore[arg-type]
        answer.raise_for_status()
        return len(answer.content)

    return get


def _inprocess(path: Path) -> Callable[[], int]:
    def render() -> int:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path)
        values = apply_voi_lut(apply_modality_lut(ds.pixel_array, ds), ds)
        low, high = float(values.min()), float(values.max())
        pixels = ((values - low) * (255.0 / max(high - low, 1))).astype(np.uint8)
        out = io.BytesIO()
        Image.fromarray(pixels).save(out, "JPEG", quality=90)
        return len(out.getvalue())

    return render


def _tail(ds: pydicom.Dataset) -> str:
    return (f"/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
            f"/instances/{ds.SOPInstanceUID}/frames/1")  # fmt: skip


def _j2k_copy(folder: Path) -> Path:
    """The JPEG 2000 CT under new UIDs (it shares its UIDs with the uncompressed one)."""
    ds = pydicom.dcmread(_files()[1])
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.save_as(folder / "693_J2KR.dcm")
    return folder / "693_J2KR.dcm"


def run(url: str, count: int = 100) -> None:
    """Rendered vs raw frames per second, one worker, ``count`` requests a round."""
    plain = _files()[0]
    with tempfile.TemporaryDirectory() as folder, scratch(url, "bench_rendered") as scoped:
        j2k = _j2k_copy(Path(folder))
        with repository.connect(scoped) as store:
            ingest(store, [plain, j2k], workers=1)
        frame = _tail(pydicom.dcmread(plain, stop_before_pixels=True))
        compressed = _tail(pydicom.dcmread(j2k, stop_before_pixels=True)) + "/rendered"
        rendered = frame + "/rendered"
        with serving(scoped) as root, requests.Session() as s:
            gzipped = _per_second(_getter(s, root + frame, headers=RAW), count)
            identity = {**RAW, "Accept-Encoding": "identity"}
            raw = _per_second(_getter(s, root + frame, headers=identity), count)
            jpeg = _per_second(_getter(s, root + rendered), count)
            png = _per_second(_getter(s, root + rendered, headers={"Accept": "image/png"}), count)
            window = _per_second(_getter(s, root + rendered, params={"window": "40,400"}), count)
            jpeg2000 = _per_second(_getter(s, root + compressed), count)
        inprocess = _per_second(_inprocess(plain), count)
    best = max(raw, gzipped)
    emit("serve-rendered", url, jpeg, "frames/s", best, jpeg / best, raw_gzip=round(gzipped, 1),
         raw_identity=round(raw, 1), png=round(png, 1),
         window=round(window, 1), jpeg2000=round(jpeg2000, 1), inprocess=round(inprocess, 1),
         size="512x512", load=round(os.getloadavg()[0], 2))  # fmt: skip

"""A synthetic corpus shaped like real archives, as DICOM files or as instance dicts.

Shape (Imaging Data Commons index): about 5 series per study; instances per series p50 1,
p90 161, p99 560; the one-instance series are SR, SEG, scouts and projections, beside CT and MR
series of hundreds of images. Instances are the bundled CT_small / MR_small files (real pydicom
datasets) with fresh, deterministic UIDs and positions, so a corpus of any size up to millions of
instances is reproducible from its seed.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pydicom
from pydicom.dataset import Dataset

from repository.normalize import NormalizedInstance, instance_from_metadata, naturalize_dataset

ROOT = "1.2.826.0.1.3680043.10.1011.9"
TEST_FILES = Path(pydicom.__file__).parent / "data" / "test_files"

SR = "1.2.840.10008.5.1.4.1.1.88.22"
SEG = "1.2.840.10008.5.1.4.1.1.66.4"
CR = "1.2.840.10008.5.1.4.1.1.1"


@dataclass(frozen=True)
class SeriesShape:
    """One series to generate: its modality, SOP class and number of instances."""

    modality: str
    count: int


def series_size(rng: random.Random) -> int:
    """Instances in one series: p50 1, p90 161, p99 560."""
    u = rng.random()
    if u < 0.5:
        return 1
    if u < 0.9:
        return rng.randint(2, 161)
    if u < 0.99:
        return rng.randint(162, 560)
    return rng.randint(561, 1000)


def study_shape(rng: random.Random) -> list[SeriesShape]:
    """The series of one study: about five, the single-instance ones SR, SEG, CR or scouts."""
    volume = rng.choice(("CT", "MR"))
    out = []
    for _ in range(rng.choice((3, 4, 5, 5, 6, 7))):
        n = series_size(rng)
        out.append(SeriesShape(rng.choice(("SR", "SEG", "CR", volume)) if n == 1 else volume, n))
    return out


@cache
def _template(modality: str) -> Dataset:
    name = "MR_small.dcm" if modality == "MR" else "CT_small.dcm"
    return pydicom.dcmread(TEST_FILES / name)


@cache
def _template_metadata(modality: str) -> dict[str, Any]:
    return naturalize_dataset(_template(modality))


_SOP_CLASS = {"SR": SR, "SEG": SEG, "CR": CR}


def _fill(
    target: Any, study: str, series: str, sop: str, shape: SeriesShape, n: int, number: int
) -> None:
    values = {
        "StudyInstanceUID": study,
        "SeriesInstanceUID": series,
        "SOPInstanceUID": sop,
        "SeriesNumber": number,
        "InstanceNumber": n + 1,
        "Modality": shape.modality,
        "SeriesDescription": f"{shape.modality} series {number}",
        "ImagePositionPatient": [0.0, 0.0, -1.25 * n],
        "ImageOrientationPatient": [1.0, 0.0, 0.0, 0.0, 1.0, 0.0],
        "SliceLocation": -1.25 * n,
    }
    if shape.modality in _SOP_CLASS:
        values["SOPClassUID"] = _SOP_CLASS[shape.modality]
    for key, value in values.items():
        if isinstance(target, Dataset):
            setattr(target, key, value)
        else:
            target[key] = value
    if isinstance(target, Dataset):
        target.file_meta.MediaStorageSOPInstanceUID = sop
        target.file_meta.MediaStorageSOPClassUID = target.SOPClassUID


@dataclass(frozen=True)
class Slot:
    """One instance to generate: where it sits in the corpus."""

    study: str
    series: str
    sop: str
    shape: SeriesShape
    index: int
    series_number: int


def slots(total: int, seed: int = 0) -> Iterator[Slot]:
    """``total`` instance positions, study by study, series by series."""
    rng = random.Random(seed)
    made = 0
    study_no = 0
    while made < total:
        study_no += 1
        study = f"{ROOT}.{seed}.{study_no}"
        for number, shape in enumerate(study_shape(rng), start=1):
            series = f"{study}.{number}"
            for n in range(shape.count):
                yield Slot(study, series, f"{series}.{n + 1}", shape, n, number)
                made += 1
                if made == total:
                    return


def instance_dicts(total: int, seed: int = 0) -> Iterator[dict[str, Any]]:
    """Naturalized instance dicts (about 3-10 KB of JSON each)."""
    for slot in slots(total, seed):
        md = dict(_template_metadata("MR" if slot.shape.modality == "MR" else "CT"))
        _fill(md, slot.study, slot.series, slot.sop, slot.shape, slot.index, slot.series_number)
        yield md


def normalized_instances(total: int, seed: int = 0) -> Iterator[NormalizedInstance]:
    """The same instances in the store's input form.

    Built directly from the validated template (only UIDs, numbers and positions change), so
    filling a million-instance database measures the store, not the validator.
    """
    for md in instance_dicts(total, seed):
        yield _normalized(md)


def _normalized(md: dict[str, Any]) -> NormalizedInstance:
    # the typed columns come from the column table, as for any input
    return instance_from_metadata(md)


def write_files(folder: Path, total: int, seed: int = 0) -> list[Path]:
    """``total`` Part 10 files (real CT/MR datasets with pixel data) under ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for slot in slots(total, seed):
        ds = copy.deepcopy(_template("MR" if slot.shape.modality == "MR" else "CT"))
        _fill(ds, slot.study, slot.series, slot.sop, slot.shape, slot.index, slot.series_number)
        path = folder / f"{slot.sop}.dcm"
        ds.save_as(path)
        paths.append(path)
    return paths


TARGET_STUDY = f"{ROOT}.999999"
"""The study the read benches ask for: three CT series of 1000 instances."""

TARGET_SERIES = tuple(f"{TARGET_STUDY}.{n}" for n in (1, 2, 3))


def target_study() -> Iterator[NormalizedInstance]:
    """The 3000 instances of ``TARGET_STUDY`` (three axial CT volumes of 1000 slices)."""
    shape = SeriesShape("CT", 1000)
    for number, series in enumerate(TARGET_SERIES, start=1):
        for n in range(shape.count):
            md = dict(_template_metadata("CT"))
            _fill(md, TARGET_STUDY, series, f"{series}.{n + 1}", shape, n, number)
            yield _normalized(md)

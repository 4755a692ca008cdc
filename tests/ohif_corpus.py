"""The comparison with OHIF 3.13.2's display sets: the corpus, the metadata handed to OHIF's code,
and one summary shape for OHIF's display sets and ours.

``tests/ohif_reference/make_expected.py`` runs OHIF's own code (under Node) over the corpus and
writes ``tests/ohif_reference/expected.json``; ``tests/test_ohif_reference.py`` compares ours with
it on both databases.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import data_store  # type: ignore[import-untyped]
import ohif_synthetic
from conftest import PYDICOM_FILES

from repository import Store
from repository.ingest import ingest
from repository.models import Study
from repository.sop_class_handlers import OHIF_HANDLER_IDS, DisplaySet
from repository.sop_class_handlers.ordering import sort_by_instance_number

CORPUS = (PYDICOM_FILES, Path(data_store.__file__).parent / "data")
EXPECTED = Path(__file__).parent / "ohif_reference" / "expected.json"

ALONE = ("rtdose_rle.dcm",)
"""Corpus files compared each in a store of its own: another corpus file has their SOP Instance
UID (rtdose.dcm), so the corpus store keeps only one of them. rtdose_rle.dcm's SliceThickness is
an empty UN element, which once was stored as a zero-length BulkDataURI: truthy to OHIF's
``hasPixelMeasurements``, so the RT Dose was reconstructable here and not in OHIF."""
EXPECTED_ALONE = Path(__file__).parent / "ohif_reference" / "expected_alone.json"

OURS_ONLY = {"key-object-selection", "presentation-state"}
"""Our handlers for classes OHIF's basic viewer leaves unsupported (a deliberate difference)."""


def ingest_corpus(store: Store, scratch: Path) -> list[str]:
    """Ingest pydicom's and pydicom-data's test files and the synthetic series (written under
    ``scratch``); the stored study UIDs, sorted."""
    synthetic = list(ohif_synthetic.write_all(scratch / "synthetic"))
    ingest(store, [*CORPUS, *synthetic], workers=1)
    return sorted(store.get_study_instance_uids())


def ohif_input(study: Study) -> dict[str, Any]:
    """A study as OHIF's DisplaySetService receives it: per series, naturalized instances in the
    order our pipeline offers them, each with an imageId."""
    series_out = []
    for series in study.series:
        instances = []
        for inst in sort_by_instance_number(series.instances):
            md = dict(inst.metadata)
            md["imageId"] = f"wadors:/studies/{inst.study_instance_uid}/instances/" \
                            f"{inst.sop_instance_uid}/frames/1"  # fmt: skip
            instances.append(md)
        series_out.append({"SeriesInstanceUID": series.series_instance_uid, "instances": instances})
    return {"StudyInstanceUID": study.study_instance_uid, "series": series_out}


def summary(ds: DisplaySet) -> dict[str, Any]:
    """Our display set in the shape ``ohif_display_sets.js`` gives OHIF's."""
    handler = ds.sop_class_handler_id
    return {
        "SeriesInstanceUID": ds.series_instance_uid,
        "SOPClassHandlerId": OHIF_HANDLER_IDS.get(handler, handler),
        "Modality": ds.modality,
        "SOPInstanceUID": ds.sop_instance_uid,
        "instances": list(ds.sop_instance_uids),
        "isReconstructable": ds.is_reconstructable,
        "numImageFrames": ds.num_image_frames,
        "isMultiFrame": ds.is_multi_frame,
        "isDerivedDisplaySet": ds.is_derived_display_set,
        "isDynamicVolume": bool(ds.extras.get("is_dynamic_volume", False)),
        "referencedSeriesInstanceUID": ds.referenced_series_instance_uid,
        "label": ds.label,
    }


def comparable(ours: list[DisplaySet], ohif: dict[str, Any]) -> tuple[list[Any], list[Any]]:
    """Our and OHIF's display sets of one study, with the deliberate differences taken out:
    KO and PR display sets (OHIF: unsupported) and unsupported labels are compared by handler
    and instances only; where OHIF's code threw on a series, our unsupported display sets of it
    (the failing handler's reason) are left out and OHIF's error is listed instead."""
    failed = {e["SeriesInstanceUID"] for e in ohif["errors"]}
    mine = []
    for ds in ours:
        if ds.is_unsupported and ds.series_instance_uid in failed:
            continue
        s = summary(ds)
        if ds.sop_class_handler_id in OURS_ONLY or ds.is_unsupported:
            s = {"SOPClassHandlerId": "unsupported", "instances": s["instances"]}
        mine.append(s)
    theirs = []
    for s in ohif["displaySets"]:
        if s["SOPClassHandlerId"] == "unsupported":
            s = {"SOPClassHandlerId": "unsupported", "instances": s["instances"]}
        theirs.append(s)
    return mine, theirs


def load_expected(path: Path = EXPECTED) -> dict[str, Any]:
    """The committed results of OHIF's code, by study UID."""
    data = json.loads(path.read_text())
    return {s["StudyInstanceUID"]: s for s in data["studies"]}


def alone_path(name: str) -> Path:
    """The corpus file ``name`` of :data:`ALONE`."""
    return next(p for root in CORPUS for p in Path(root).rglob(name))

"""OHIF 3.13.2's handlers, on both databases: which handler claims each SOP class (in the basic
viewer's order), what SEG and RTSTRUCT display sets hold, and OHIF's handler API forms (the seed's
v2 example as written, v3 handlers returning plain dicts, modules with several handlers)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pydicom
import pytest
from dicom_factory import STUDY, base, ct_slice, image, sequence, write
from pydicom import uid
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.uid import generate_uid

from repository import Store
from repository.sop_class_handlers import DisplaySet, sop_classes

P = "1.2.840.10008.5.1.4.1.1."


def add(store: Store, datasets: list[Dataset], folder: Path) -> None:
    store.add_instances([pydicom.dcmread(write(ds, folder)) for ds in datasets])


def of_series(sets: list[DisplaySet], series: str) -> list[DisplaySet]:
    return [ds for ds in sets if ds.series_instance_uid == series]


def instance_of(sop_class: str, series: str, **kw: Any) -> Dataset:
    """A minimal instance of ``sop_class`` with what OHIF's handler for it reads."""
    ds = image(base(sop_class, "OT", series, **kw))
    ds.ReferencedSeriesSequence = sequence(
        {"SeriesInstanceUID": "1.2.3.4", "ReferencedInstanceSequence": sequence()}
    )
    return ds


# OHIF 3.13.2's lists, checked one by one against the handlers' sources (see sop_classes.py);
# the stack list is getSopClassHandlerModule.js's, where UltrasoundImageStorageRET is undefined
CLAIMED = [
    *((c, "video" if c == P + "77.1.4.1" else "stack") for c in sop_classes.STACK),
    *((P + c, "ecg") for c in ("9.1.1", "9.1.2", "9.1.3", "9.2.1", "9.3.1")),
    (P + "66.4", "seg"), (P + "66.7", "seg"),  # label-map segmentation too
    (P + "30", "parametric-map"),
    (P + "77.1.6", "whole-slide-microscopy"),
    (P + "104.1", "pdf"),
    (P + "88.11", "sr"), (P + "88.22", "sr"), (P + "88.33", "sr"), (P + "88.34", "sr-3d"),
    (P + "481.3", "rtstruct"),
    (P + "88.59", "key-object-selection"),  # ours
    (P + "11.1", "presentation-state"),  # ours
]  # fmt: skip

UNCLAIMED_BY_OHIF = [
    P + "6",  # Ultrasound Image Storage (retired)
    P + "3",  # Ultrasound Multi-frame Image Storage (retired)
    P + "5",  # Nuclear Medicine Image Storage (retired)
    P + "104.2", P + "104.3", P + "104.4", P + "104.5",  # encapsulated CDA, STL, OBJ, MTL
    P + "77.1.5.7", P + "77.1.5.5",  # ophthalmic OCT en face, wide-field ophthalmic
    P + "481.5",  # RT Plan
]  # fmt: skip


def test_the_stack_list_is_ohifs() -> None:
    # extensions/default/src/getSopClassHandlerModule.js: 50 defined entries, corneal topography,
    # ophthalmic photography and tomography and the video classes among them
    assert len(sop_classes.STACK) == len(set(sop_classes.STACK)) == 50
    assert {P + "82.1", P + "77.1.5.1", P + "77.1.5.4", P + "77.1.1.1"} <= set(sop_classes.STACK)
    assert not set(UNCLAIMED_BY_OHIF) & set(sop_classes.STACK)


def test_each_sop_class_goes_to_ohifs_handler(store: Store, tmp_path: Path) -> None:
    # DisplaySetService._makeDisplaySetForInstances over the basic viewer's handler order
    plan = {generate_uid(): (c, h) for c, h in CLAIMED}
    plan |= {generate_uid(): (c, "unsupported") for c in UNCLAIMED_BY_OHIF}
    add(store, [instance_of(c, series) for series, (c, _) in plan.items()], tmp_path)
    sets = store.get_display_sets(STUDY)
    got = {series: [ds.sop_class_handler_id for ds in of_series(sets, series)] for series in plan}
    assert got == {series: [handler] for series, (_, handler) in plan.items()}


@pytest.mark.parametrize(
    ("transfer_syntax", "handler"),
    [(uid.MPEG4HP41, "video"), (uid.HEVCMP51, "video"), (uid.MPEG2MPML, "stack")],
)
def test_video_transfer_syntaxes(
    store: Store, tmp_path: Path, transfer_syntax: str, handler: str
) -> None:
    # dicom-video: H.264 and HEVC only; an MPEG-2 video endoscopy goes on to the stack
    series = generate_uid()
    ds = instance_of(P + "77.1.1.1", series, transfer_syntax=transfer_syntax)
    ds.PixelData = encapsulate([bytes(16)])
    add(store, [ds], tmp_path)
    [found] = of_series(store.get_display_sets(STUDY), series)
    assert found.sop_class_handler_id == handler
    assert found.is_derived_display_set is (handler == "video")


# ------------------------------------------------------------------------ SEG and RTSTRUCT


def seg(series: str, number: int, referenced: str, sops: list[str]) -> Dataset:
    ds = image(base(P + "66.4", "SEG", series, number=number), frames=1)
    ds.ReferencedSeriesSequence = sequence({
        "SeriesInstanceUID": referenced,
        "ReferencedInstanceSequence": sequence(*({"ReferencedSOPInstanceUID": s} for s in sops)),
    })  # fmt: skip
    return ds


def test_a_seg_series_shows_its_newest_segmentation_reconstructable_as_its_volume(
    store: Store, tmp_path: Path
) -> None:
    # cornerstone-dicom-seg _getDisplaySetsFromSeries: instances[last] after sortStudyInstances;
    # isReconstructable from the referenced display set (getDisplaySetsForReferences); the other
    # instances are left over and, as in DisplaySetService, not shown
    ct, flat, segs, flat_seg, bare = (generate_uid() for _ in range(5))
    volume = [ct_slice(ct, n, float(n)) for n in (1, 2, 3)]
    single = [ct_slice(flat, 1, 0.0)]
    sops = [s.SOPInstanceUID for s in volume]
    newer, older = seg(segs, 2, ct, sops), seg(segs, 1, ct, sops)
    unreferenced = seg(bare, 1, ct, sops)
    del unreferenced.ReferencedSeriesSequence
    add(store, [*volume, *single, newer, older, seg(flat_seg, 1, flat, [single[0].SOPInstanceUID]),
                unreferenced], tmp_path)  # fmt: skip
    sets = store.get_display_sets(STUDY)
    [shown] = of_series(sets, segs)
    assert shown.sop_instance_uids == (newer.SOPInstanceUID,)
    assert shown.is_reconstructable and shown.referenced_series_instance_uid == ct
    assert (shown.modality, shown.label, shown.num_image_frames) == ("SEG", "Series 1 - SEG", None)
    [on_flat] = of_series(sets, flat_seg)
    assert not on_flat.is_reconstructable
    [missing] = of_series(sets, bare)  # no ReferencedSeriesSequence: the handler declines
    assert missing.is_unsupported and "'seg'" in missing.extras["reason"]


def rtstruct(series: str, number: int, referenced: str, sops: list[str]) -> Dataset:
    ds = base(P + "481.3", "RTSTRUCT", series, number=number)
    ds.StructureSetDate = "20260102"
    ds.ReferencedFrameOfReferenceSequence = sequence({
        "FrameOfReferenceUID": "1.2.3",
        "RTReferencedStudySequence": sequence({
            "ReferencedSOPInstanceUID": STUDY,
            "RTReferencedSeriesSequence": sequence({
                "SeriesInstanceUID": referenced,
                "ContourImageSequence": sequence(
                    *({"ReferencedSOPInstanceUID": s} for s in sops)
                ),
            }),
        }),
    })  # fmt: skip
    return ds


def test_an_rtstruct_series_is_one_display_set_over_its_derived_references(
    store: Store, tmp_path: Path
) -> None:
    # cornerstone-dicom-rt: all instances, the last by number represents them; the referenced
    # series comes from _deriveReferencedSeriesSequenceFromFrameOfReferenceSequence
    ct, rt = generate_uid(), generate_uid()
    volume = [ct_slice(ct, n, float(n)) for n in (1, 2, 3)]
    sops = [s.SOPInstanceUID for s in volume]
    structures = [rtstruct(rt, 2, ct, sops), rtstruct(rt, 1, ct, sops)]
    add(store, [*volume, *structures], tmp_path)
    [ds] = of_series(store.get_display_sets(STUDY), rt)
    assert ds.sop_class_handler_id == "rtstruct" and len(ds.instances) == 2
    assert ds.sop_instance_uid == structures[0].SOPInstanceUID
    assert ds.referenced_series_instance_uid == ct and ds.is_reconstructable


# ------------------------------------------------------------------------ handler API


def seed_module() -> dict[str, Any]:
    """The seed's example module, line by line in Python."""
    sop_class_uids = {"BASIC_TEXT_SR": P + "88.11", "ENHANCED_SR": P + "88.22"}

    def get_display_set_from_series(
        series: Any, study: Any, dicom_web_client: Any, authorization_headers: Any
    ) -> dict[str, Any]:
        instance = series.get_first_instance()
        return {
            "plugin": "html",
            "displaySetInstanceUid": 0,
            "wadoRoot": study.get_data()["wadoRoot"],
            "wadoUri": instance.get_data()["wadouri"],
            "sopInstanceUid": instance.get_sop_instance_uid(),
            "seriesInstanceUid": series.get_series_instance_uid(),
            "studyInstanceUid": study.get_study_instance_uid(),
            "authorizationHeaders": authorization_headers,
        }

    return {
        "id": "OHIFDicomHtmlSopClassHandler",
        "sopClassUids": list(sop_class_uids.values()),
        "getDisplaySetFromSeries": get_display_set_from_series,
    }


def test_the_seeds_v2_example_runs_as_written(store: Store, tmp_path: Path) -> None:
    series = generate_uid()
    report = base(P + "88.22", "SR", series)
    report.ValueType = "CONTAINER"
    store.add_instances([pydicom.dcmread(write(report, tmp_path))],
                        wado_root="https://pacs.example/dicom-web")  # fmt: skip
    [ds] = store.get_display_sets(STUDY, handlers=[seed_module()],
                                  authorization_headers={"Authorization": "Bearer t"})  # fmt: skip
    assert (ds.sop_class_handler_id, ds.plugin) == ("OHIFDicomHtmlSopClassHandler", "html")
    assert ds.sop_instance_uid == report.SOPInstanceUID
    assert ds.wado_root == "https://pacs.example/dicom-web"
    assert ds.authorization_headers == {"Authorization": "Bearer t"}


def test_a_v3_handler_may_return_plain_dicts(store: Store, tmp_path: Path) -> None:
    series = generate_uid()
    slices = [ct_slice(series, n, float(n)) for n in (1, 2)]
    add(store, slices, tmp_path)

    def get_display_sets_from_series(instances: list[Any]) -> list[dict[str, Any]]:
        return [{"Modality": "CT", "SOPInstanceUID": i.sop_instance_uid, "instances": [i],
                 "isReconstructable": False, "numImageFrames": 1, "label": "one",
                 "thumbnail": "x"} for i in instances]  # fmt: skip

    handler = {"name": "plain", "sopClassUids": [uid.CTImageStorage],
               "getDisplaySetsFromSeries": get_display_sets_from_series}  # fmt: skip
    sets = store.get_display_sets(STUDY, handlers=[handler])
    assert [(ds.sop_class_handler_id, ds.label, ds.num_image_frames) for ds in sets] == [
        ("plain", "one", 1),
        ("plain", "one", 1),
    ]
    assert [ds.sop_instance_uids for ds in sets] == [(s.SOPInstanceUID,) for s in slices]
    assert sets[0].extras == {"thumbnail": "x"}


class Module:
    """An OHIF-style extension: its module function returns a list of handlers."""

    def get_sop_class_handler_module(self) -> list[dict[str, Any]]:
        def take_all(instances: list[Any]) -> list[dict[str, Any]]:
            return [{"instances": list(instances), "plugin": "mine"}]

        return [
            {"name": "mine-ct", "sopClassUids": [uid.CTImageStorage],
             "getDisplaySetsFromSeries": take_all},
            {"name": "mine-mr", "sopClassUids": [uid.MRImageStorage],
             "getDisplaySetsFromSeries": take_all},
        ]  # fmt: skip


def test_a_module_registers_all_its_handlers(store: Store, tmp_path: Path) -> None:
    added = store.handlers.register(Module(), before="stack")
    assert [h.id for h in added] == ["mine-ct", "mine-mr"]
    assert store.handlers.ids.index("mine-mr") == store.handlers.ids.index("stack") - 1
    series = generate_uid()
    add(store, [ct_slice(series, 1, 0.0)], tmp_path)
    [ds] = store.get_display_sets(STUDY)
    assert (ds.sop_class_handler_id, ds.plugin) == ("mine-ct", "mine")

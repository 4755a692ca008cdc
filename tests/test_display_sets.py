"""Display sets from the database, on both databases: every built-in handler, real and generated
files, mixed series, ordering, declining and unsupported instances."""

from __future__ import annotations

from pathlib import Path

import data_store
import pydicom
import pytest
from conftest import PYDICOM_FILES
from dicom_factory import (
    STUDY,
    ct_slice,
    enhanced_ct,
    key_objects,
    parametric_map,
    pdf,
    presentation_state,
    projection,
    secondary_capture,
    sequence,
    sr_3d,
    video,
    whole_slide_level,
    write,
)
from pydicom import uid
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from repository import NotFoundError, Store
from repository.sop_class_handlers import DisplaySet

PYDICOM_DATA = Path(data_store.__file__).parent / "data"


def add_files(store: Store, paths: list[Path], data_source: str = "default") -> None:
    store.add_instances([pydicom.dcmread(p, force=True) for p in paths], data_source=data_source)


def add(store: Store, datasets: list[Dataset], folder: Path) -> None:
    add_files(store, [write(ds, folder) for ds in datasets])


def by_series(sets: list[DisplaySet], series_uid: str) -> list[DisplaySet]:
    return [ds for ds in sets if ds.series_instance_uid == series_uid]


def only(sets: list[DisplaySet], series_uid: str) -> DisplaySet:
    found = by_series(sets, series_uid)
    assert len(found) == 1, found
    return found[0]


# ----------------------------------------------------------------------------- real files


def test_real_files_give_the_display_sets_a_radiologist_expects(store: Store) -> None:
    files = {
        "mr": PYDICOM_FILES / "MR_small.dcm",
        "emri": PYDICOM_DATA / "emri_small.dcm",
        "sr": PYDICOM_FILES / "reportsi.dcm",
        "seg": PYDICOM_DATA / "liver.dcm",
        "rtstruct": PYDICOM_FILES / "rtstruct.dcm",
        "us_multi": PYDICOM_FILES / "examples_ybr_color.dcm",
        "dose": PYDICOM_FILES / "rtdose.dcm",
        "ecg": PYDICOM_FILES / "waveform_ecg.dcm",
    }
    add_files(store, list(files.values()))
    read = {k: pydicom.dcmread(p, stop_before_pixels=True, force=True) for k, p in files.items()}

    def sets_of(key: str) -> list[DisplaySet]:
        ds = read[key]
        return by_series(store.get_display_sets(ds.StudyInstanceUID), ds.SeriesInstanceUID)

    [mr] = sets_of("mr")
    assert (mr.sop_class_handler_id, mr.plugin, mr.modality) == ("stack", "cornerstone", "MR")
    assert mr.sop_instance_uid == read["mr"].SOPInstanceUID and mr.num_image_frames == 1

    [emri] = sets_of("emri")  # enhanced MR, multi-frame: its own display set
    assert emri.is_multi_frame and emri.num_image_frames == read["emri"].NumberOfFrames

    [us] = sets_of("us_multi")
    assert us.is_multi_frame and us.num_image_frames == read["us_multi"].NumberOfFrames

    [sr] = sets_of("sr")  # OHIF's dicom-sr: derived, no frame count, no referenced series
    assert (sr.sop_class_handler_id, sr.plugin, sr.modality) == ("sr", "dicom-sr", "SR")
    assert sr.is_derived_display_set and sr.num_image_frames is None

    [seg] = sets_of("seg")
    assert seg.sop_class_handler_id == "seg" and seg.is_derived_display_set
    expected = read["seg"].ReferencedSeriesSequence[0].SeriesInstanceUID
    assert seg.referenced_series_instance_uid == expected

    # no ReferencedSeriesSequence and no ContourImageSequence: OHIF's dicom-rt throws
    # (_deriveReferencedSeriesSequenceFromFrameOfReferenceSequence); we show it unsupported
    [rt] = sets_of("rtstruct")
    assert "ReferencedSeriesSequence" not in read["rtstruct"]
    assert rt.is_unsupported and "has no ContourImageSequence" in rt.extras["reason"]
    assert "'rtstruct' failed" in rt.extras["reason"]

    [dose] = sets_of("dose")
    assert dose.sop_class_handler_id == "stack" and dose.modality == "RTDOSE"

    [ecg] = sets_of("ecg")  # OHIF's DicomEcgSopClassHandler
    assert (ecg.sop_class_handler_id, ecg.num_image_frames, ecg.is_derived_display_set) == (
        "ecg",
        0,
        False,
    )
    assert ecg.extras["ecg"]["number_of_waveform_channels"] == 12


def test_enhanced_ct_and_sr_from_pydicom_data(store: Store) -> None:
    paths = [PYDICOM_FILES / "eCT_Supplemental.dcm", PYDICOM_FILES / "test-SR.dcm"]
    paths = [p if p.exists() else PYDICOM_DATA / p.name for p in paths]
    add_files(store, paths)
    ect = pydicom.dcmread(paths[0], stop_before_pixels=True)
    [ds] = store.get_display_sets(ect.StudyInstanceUID)
    assert ds.is_multi_frame and ds.num_image_frames == ect.NumberOfFrames
    sr = pydicom.dcmread(paths[1], stop_before_pixels=True)
    [report] = store.get_display_sets(sr.StudyInstanceUID)
    assert report.plugin == "dicom-sr" and report.sop_instance_uid == sr.SOPInstanceUID


# ----------------------------------------------------------------------------- stack


def test_ct_volume_is_sorted_along_the_normal_and_reconstructable(
    store: Store, tmp_path: Path
) -> None:
    series = generate_uid()
    # instance numbers do not follow the table position
    zs = {1: -10.0, 2: 10.0, 3: 0.0, 4: 5.0, 5: -5.0}
    add(store, [ct_slice(series, n, z) for n, z in zs.items()], tmp_path)
    ds = only(store.get_display_sets(STUDY), series)
    assert ds.is_reconstructable and not ds.is_multi_frame
    heights = [i.metadata["ImagePositionPatient"][2] for i in ds.instances]
    assert heights == [10.0, 5.0, 0.0, -5.0, -10.0]  # head first, as OHIF sorts
    assert ds.num_image_frames == 5


def test_a_gap_makes_a_stack_not_reconstructable_and_keeps_instance_order(
    store: Store, tmp_path: Path
) -> None:
    series = generate_uid()
    zs = {3: 0.0, 1: 2.0, 2: 4.0, 4: 12.0}
    add(store, [ct_slice(series, n, z) for n, z in zs.items()], tmp_path)
    ds = only(store.get_display_sets(STUDY), series)
    assert not ds.is_reconstructable
    assert [i.instance_number for i in ds.instances] == [1, 2, 3, 4]


def test_enhanced_multiframe_volume_is_reconstructable(store: Store, tmp_path: Path) -> None:
    # OHIF's processMultiframe (isDisplaySetReconstructable.js) checks that pixel measures,
    # orientation and position are present, not the spacing ("TODO - check spacing")
    even, gappy, no_measures = generate_uid(), generate_uid(), generate_uid()
    volumes = [enhanced_ct(even, [0, 1, 2, 3]), enhanced_ct(gappy, [0, 1, 5])]
    for ds in volumes:
        ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence = sequence(
            {"PixelSpacing": [1, 1], "SliceThickness": 1}
        )
    add(store, [*volumes, enhanced_ct(no_measures, [0, 1, 2])], tmp_path)
    sets = store.get_display_sets(STUDY)
    assert only(sets, even).is_reconstructable and only(sets, even).num_image_frames == 4
    assert only(sets, gappy).is_reconstructable
    assert not only(sets, no_measures).is_reconstructable


@pytest.mark.parametrize("modality", ["CR", "DX", "MG"])
def test_each_projection_image_is_its_own_display_set(
    store: Store, tmp_path: Path, modality: str
) -> None:
    series = generate_uid()
    add(store, [projection(modality, series, n) for n in (2, 1, 3)], tmp_path)
    sets = by_series(store.get_display_sets(STUDY), series)
    assert [len(ds.instances) for ds in sets] == [1, 1, 1]
    assert [ds.instances[0].instance_number for ds in sets] == [1, 2, 3]
    assert len({ds.display_set_instance_uid for ds in sets}) == 3


def test_each_multiframe_instance_is_split_from_the_single_frames(
    store: Store, tmp_path: Path
) -> None:
    series = generate_uid()
    add(store, [ct_slice(series, 1, 0), ct_slice(series, 2, 1),
                enhanced_ct(series, [0, 1, 2], number=3),
                enhanced_ct(series, [5, 6], number=4)], tmp_path)  # fmt: skip
    sets = by_series(store.get_display_sets(STUDY), series)
    assert [(len(ds.instances), ds.num_image_frames, ds.is_multi_frame) for ds in sets] == [
        (2, 2, False),
        (1, 3, True),
        (1, 2, True),
    ]


# ----------------------------------------------------------------------------- other handlers


def test_video_handler_takes_videos_before_the_stack(store: Store, tmp_path: Path) -> None:
    series = generate_uid()
    h264_sc = video(series, 2, sop_class=uid.SecondaryCaptureImageStorage)
    long_sc = secondary_capture(series, 3, frames=120)
    still = secondary_capture(series, 4)
    short = secondary_capture(series, 5, frames=10)
    add(store, [video(series, 1), h264_sc, long_sc, still, short], tmp_path)
    sets = by_series(store.get_display_sets(STUDY), series)
    handlers = [(ds.sop_class_handler_id, ds.instances[0].instance_number) for ds in sets]
    # split by SOP class first (DisplaySetService); OHIF's video handler takes H.264 and
    # secondary captures (.7, .7.4) with >= 90 frames; a multi-frame grayscale SC goes to stack
    assert handlers == [("video", 1), ("video", 2), ("stack", 4), ("stack", 3), ("stack", 5)]
    assert {ds.plugin for ds in sets[:2]} == {"dicom-video"}
    assert sets[0].extras["transfer_syntax_uid"] == uid.MPEG4HP41


def test_pdf_is_one_display_set_with_its_document_uri(store: Store, tmp_path: Path) -> None:
    series = generate_uid()
    add(store, [pdf(series, 1, "Referral"), pdf(series, 2, "Report")], tmp_path)
    sets = by_series(store.get_display_sets(STUDY), series)
    # OHIF's dicom-pdf labels a document with its SeriesDescription, "PDF" when absent
    assert [(ds.plugin, ds.label) for ds in sets] == [("dicom-pdf", "PDF"), ("dicom-pdf", "PDF")]
    assert [ds.extras["document_title"] for ds in sets] == ["Referral", "Report"]
    uri = sets[0].extras["document_uri"]
    assert uri.startswith("file://") and "offset=" in uri
    assert sets[0].extras["mime_type"] == "application/pdf"


def test_whole_slide_levels_are_one_display_set(store: Store, tmp_path: Path) -> None:
    series = generate_uid()
    levels = [whole_slide_level(series, n, size) for n, size in ((2, 512), (1, 1024), (3, 256))]
    add(store, levels, tmp_path)
    ds = only(store.get_display_sets(STUDY), series)
    assert ds.plugin == "dicom-microscopy" and len(ds.instances) == 3
    # OHIF's DicomMicroscopySopClassHandler: the first instance represents the series
    assert ds.sop_instance_uid == levels[1].SOPInstanceUID  # instance number 1
    assert (ds.modality, ds.num_image_frames) == ("SM", 0)


def test_derived_objects_reference_their_series(store: Store, tmp_path: Path) -> None:
    ct = generate_uid()
    slices = [ct_slice(ct, n, float(n)) for n in (1, 2, 3)]
    ko_series, pr_series, pm_series, sr_series = (generate_uid() for _ in range(4))
    sops = [s.SOPInstanceUID for s in slices]
    derived = [
        key_objects(ko_series, ct, sops[:1]),
        presentation_state(pr_series, ct),
        parametric_map(pm_series, sops),  # OHIF reads its ReferencedSeriesSequence
        sr_3d(sr_series, ct),
    ]
    derived[2].ReferencedSeriesSequence = sequence({"SeriesInstanceUID": ct})
    add(store, slices + derived, tmp_path)
    sets = store.get_display_sets(STUDY)
    expected = {
        ko_series: ("key-object-selection", "dicom-ko"),
        pr_series: ("presentation-state", "dicom-pr"),
        pm_series: ("parametric-map", "dicom-pmap"),
        sr_series: ("sr-3d", "dicom-sr"),
    }
    for series, (handler, plugin) in expected.items():
        ds = only(sets, series)
        assert (ds.sop_class_handler_id, ds.plugin) == (handler, plugin)
        # OHIF's SR display set names no referenced series until the report is loaded
        referenced = None if handler == "sr-3d" else ct
        assert ds.is_derived_display_set and ds.referenced_series_instance_uid == referenced
    assert not only(sets, ct).is_derived_display_set


def test_sr_series_is_one_display_set_represented_by_the_newest(
    store: Store, tmp_path: Path
) -> None:
    series = generate_uid()
    reports = [sr_3d(series, "1.2.3", number=n) for n in (1, 2, 3)]
    for ds, time in zip(reports, ("090000", "170000", "120000"), strict=True):
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = uid.EnhancedSRStorage
        ds.ContentTime = time
    add(store, reports, tmp_path)
    ds = only(store.get_display_sets(STUDY), series)
    assert ds.plugin == "dicom-sr" and len(ds.instances) == 3
    # OHIF's dicom-sr: the last by InstanceNumber (sortStudyInstances) is the newest
    assert ds.sop_instance_uid == reports[2].SOPInstanceUID


# ----------------------------------------------------------------------------- mixed, unsupported


def test_mixed_series_is_split_by_sop_class(store: Store, tmp_path: Path) -> None:
    series = generate_uid()
    plan = secondary_capture(series, 9)
    plan.SOPClassUID = plan.file_meta.MediaStorageSOPClassUID = uid.RTPlanStorage
    items = [ct_slice(series, 1, 0.0), ct_slice(series, 2, 1.0), pdf(series, 3), plan,
             video(series, 4)]  # fmt: skip
    add(store, items, tmp_path)
    sets = by_series(store.get_display_sets(STUDY), series)
    assert [ds.sop_class_handler_id for ds in sets] == [
        "stack",
        "pdf",
        "video",
        "unsupported",
    ]
    assert len(sets[0].instances) == 2
    assert (
        "no handler for SOP class 1.2.840.10008.5.1.4.1.1.481.5 (RT Plan Storage)"
        in (sets[3].extras["reason"])
    )
    covered = sorted(u for ds in sets for u in ds.sop_instance_uids)
    assert covered == sorted(ds.SOPInstanceUID for ds in items)


def test_instances_without_sop_class_are_unsupported(store: Store) -> None:
    series = generate_uid()
    store.add_instances([
        {"StudyInstanceUID": STUDY, "SeriesInstanceUID": series, "SOPInstanceUID": generate_uid(),
         "Modality": "OT", "InstanceNumber": n}
        for n in (1, 2)
    ])  # fmt: skip
    ds = only(store.get_display_sets(STUDY), series)
    assert ds.is_unsupported and ds.plugin == "unsupported" and len(ds.instances) == 2
    assert ds.extras["reason"] == "the instances have no SOP Class UID"


def test_unknown_study_is_a_clear_error(store: Store) -> None:
    with pytest.raises(NotFoundError, match=r"study 1\.2\.3 is not in the store"):
        store.get_display_sets("1.2.3")


def test_data_source_selects_one_series_list_and_ids_differ_per_source(
    store: Store, tmp_path: Path
) -> None:
    series = generate_uid()
    paths = [write(ct_slice(series, n, float(n)), tmp_path) for n in (1, 2)]
    add_files(store, paths, data_source="a")
    add_files(store, paths, data_source="b")
    both = store.get_display_sets(STUDY)
    assert [ds.data_source for ds in both] == ["a", "b"]
    assert both[0].display_set_instance_uid != both[1].display_set_instance_uid
    [only_b] = store.get_display_sets(STUDY, data_source="b")
    assert only_b.display_set_instance_uid == both[1].display_set_instance_uid
    with pytest.raises(NotFoundError, match="data source 'c'"):
        store.get_display_sets(STUDY, data_source="c")


def test_authorization_headers_are_copied_never_shown(store: Store, tmp_path: Path) -> None:
    series = generate_uid()
    add(store, [ct_slice(series, 1, 0.0)], tmp_path)
    secret = {"Authorization": "Bearer s3cr3t"}
    [ds] = store.get_display_sets(STUDY, authorization_headers=secret)
    assert ds.authorization_headers == secret
    assert "s3cr3t" not in repr(ds) and "s3cr3t" not in str(ds.to_json())
    [plain] = store.get_display_sets(STUDY)
    assert plain.authorization_headers is None
    assert plain.display_set_instance_uid == ds.display_set_instance_uid

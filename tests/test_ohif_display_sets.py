"""Display sets follow OHIF 3.13.2's rules, on both databases: synthetic series built with pydicom,
one per rule, each test naming the OHIF function it follows.

OHIF sources (tag v3.13.2; the built ``@ohif/app`` bundle holds the same code):
``platform/core/src/utils/isDisplaySetReconstructable.js``, ``sortInstancesByPosition.ts``,
``sortStudy.ts``, ``classes/ImageSet.ts``, ``services/DisplaySetService/DisplaySetService.ts``,
``extensions/default/src/getSopClassHandlerModule.js`` and the other extensions' handlers,
``@cornerstonejs/metadata`` ``splitImageIdsBy4DTags.js``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pydicom
import pytest
from dicom_factory import STUDY, base, ct_slice, enhanced_ct, image, sequence, write
from pydicom import uid
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from repository import Store
from repository.sop_class_handlers import DisplaySet


def add(store: Store, datasets: list[Dataset], folder: Path) -> None:
    store.add_instances([pydicom.dcmread(write(ds, folder)) for ds in datasets])


def series_sets(store: Store, series: str) -> list[DisplaySet]:
    return [ds for ds in store.get_display_sets(STUDY) if ds.series_instance_uid == series]


def one(store: Store, series: str) -> DisplaySet:
    [ds] = series_sets(store, series)
    return ds


def heights(ds: DisplaySet) -> list[float]:
    return [i.metadata["ImagePositionPatient"][2] for i in ds.instances]


def numbers(ds: DisplaySet) -> list[int | None]:
    return [i.instance_number for i in ds.instances]


def ct_stack(series: str, zs: dict[int, float], **kw: Any) -> list[Dataset]:
    return [ct_slice(series, n, z, **kw) for n, z in zs.items()]


# ------------------------------------------------- isDisplaySetReconstructable: single frames


def test_irregular_spacing_is_not_reconstructable_and_keeps_instance_order(
    store: Store, tmp_path: Path
) -> None:
    # processSingleframe + _getSpacingIssue: a gap of 1.5 mean gaps is IRREGULAR_SPACING;
    # ImageSet.sort then falls back to sortByInstanceNumber
    series = generate_uid()
    add(store, ct_stack(series, {2: 0.0, 1: 1.0, 4: 2.0, 3: 3.5}), tmp_path)
    ds = one(store, series)
    assert not ds.is_reconstructable
    assert numbers(ds) == [1, 2, 3, 4]


def test_one_missing_slice_is_still_reconstructable_and_sorted_by_position(
    store: Store, tmp_path: Path
) -> None:
    # _getSpacingIssue: a gap of about two mean gaps is MISSING_FRAMES, reconstruction allowed
    # (the mean is taken over first to last, so it includes the gap); ImageSet.sort ->
    # sortImagesByPatientPosition (furthest along the normal first)
    series = generate_uid()
    zs = [z for z in range(11) if z != 4]
    add(store, ct_stack(series, {n: float(z) for n, z in enumerate(zs, 1)}), tmp_path)
    ds = one(store, series)
    assert ds.is_reconstructable
    assert heights(ds) == [float(z) for z in reversed(zs)]
    assert ds.extras["missing_frames"] == 1 and ds.num_image_frames == 10
    # with five images the one gap pushes the mean 25% off: OHIF calls that irregular
    short = generate_uid()
    add(store, ct_stack(short, {1: 0.0, 2: 1.0, 3: 3.0, 4: 4.0, 5: 5.0}), tmp_path)
    assert not one(store, short).is_reconstructable


def test_spacing_within_twenty_percent_is_regular(store: Store, tmp_path: Path) -> None:
    # spacingTolerance = 0.2: gaps of 1.0, 1.15, 0.85 around a mean of 1.0 are accepted
    series = generate_uid()
    add(store, ct_stack(series, {1: 0.0, 2: 1.0, 3: 2.15, 4: 3.0}), tmp_path)
    assert one(store, series).is_reconstructable


@pytest.mark.parametrize(("tilt", "reconstructable"), [(0.005, True), (0.02, False)])
def test_orientation_tolerance(
    store: Store, tmp_path: Path, tilt: float, reconstructable: bool
) -> None:
    # _isSameOrientation: every direction cosine within iopTolerance = 0.01 of the first image's
    series = generate_uid()
    slices = ct_stack(series, {1: 0.0, 2: 1.0, 3: 2.0})
    slices[1].ImageOrientationPatient = [1, tilt, 0, 0, 1, 0]
    add(store, slices, tmp_path)
    assert one(store, series).is_reconstructable is reconstructable


def test_mixed_sizes_are_not_reconstructable(store: Store, tmp_path: Path) -> None:
    # processSingleframe: Rows / Columns must match the first image's
    series = generate_uid()
    slices = ct_stack(series, {1: 0.0, 2: 1.0, 3: 2.0})
    image(slices[2], rows=8, columns=8)
    add(store, slices, tmp_path)
    ds = one(store, series)
    assert not ds.is_reconstructable and len(ds.instances) == 3


def test_reconstructability_is_by_geometry_for_any_modality(store: Store, tmp_path: Path) -> None:
    # isDisplaySetReconstructable no longer checks reconstructable modalities: an OT stack with
    # positions is a volume; two images need no spacing check at all
    series, pair = generate_uid(), generate_uid()
    stack = ct_stack(series, {1: 0.0, 2: 2.0, 3: 4.0})
    duo = ct_stack(pair, {1: 0.0, 2: 7.0})
    for ds in [*stack, *duo]:
        ds.Modality = "OT"
    add(store, [*stack, *duo], tmp_path)
    assert one(store, series).is_reconstructable and one(store, pair).is_reconstructable


def test_a_single_image_or_one_without_position_is_not_reconstructable(
    store: Store, tmp_path: Path
) -> None:
    # "Can't reconstruct if we only have one image" / "... don't have the ImagePositionPatient"
    single, unplaced = generate_uid(), generate_uid()
    slices = ct_stack(unplaced, {1: 0.0, 2: 1.0, 3: 2.0})
    del slices[1].ImagePositionPatient
    add(store, [ct_slice(single, 1, 0.0), *slices], tmp_path)
    assert not one(store, single).is_reconstructable
    assert not one(store, unplaced).is_reconstructable


# ------------------------------------------------------------------------ instance order


def test_missing_instance_numbers_sort_as_zero_then_by_sop_instance_uid(
    store: Store, tmp_path: Path
) -> None:
    # sortByInstanceNumber: parseInt(InstanceNumber) || 0, then compare(SOPInstanceUID)
    series = generate_uid()
    slices = ct_stack(series, {1: 0.0, 2: 5.0, 3: 6.5})  # irregular: instance order is kept
    for n, ds in enumerate(slices):
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = f"1.2.3.{9 - n}"
    del slices[1].InstanceNumber
    del slices[2].InstanceNumber
    add(store, slices, tmp_path)
    ds = one(store, series)
    assert [i.sop_instance_uid for i in ds.instances] == ["1.2.3.7", "1.2.3.8", "1.2.3.9"]
    assert ds.sop_instance_uid == "1.2.3.7"  # makeDisplaySet: the first after sorting


def test_the_representative_is_first_by_number_even_when_sorted_by_position(
    store: Store, tmp_path: Path
) -> None:
    # makeDisplaySet: instance = instances[0] after sortStudyInstances, before ImageSet.sort
    series = generate_uid()
    add(store, ct_stack(series, {1: 0.0, 2: 1.0, 3: 2.0}), tmp_path)
    ds = one(store, series)
    assert (
        heights(ds) == [2.0, 1.0, 0.0] and ds.instances[-1].sop_instance_uid == ds.sop_instance_uid
    )


# ------------------------------------------------------------------------ multi-frame


def _measures(ds: Dataset) -> Dataset:
    ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence = sequence(
        {"PixelSpacing": [1, 1], "SliceThickness": 1}
    )
    return ds


def test_multiframe_with_and_without_functional_groups(store: Store, tmp_path: Path) -> None:
    # processMultiframe: hasPixelMeasurements, hasOrientation, hasPosition, from functional
    # groups or from top-level PixelSpacing + SliceThickness, ImageOrientation/PositionPatient
    grouped, bare, flat = generate_uid(), generate_uid(), generate_uid()
    legacy = image(base(uid.EnhancedCTImageStorage, "CT", flat), frames=3)
    legacy.PixelSpacing, legacy.SliceThickness = [1, 1], 2
    legacy.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    legacy.ImagePositionPatient = [0, 0, 0]
    add(store, [_measures(enhanced_ct(grouped, [0, 1, 2])), enhanced_ct(bare, [0, 1, 2]), legacy],
        tmp_path)  # fmt: skip
    for series, expected in ((grouped, True), (bare, False), (flat, True)):
        ds = one(store, series)
        assert (ds.is_multi_frame, ds.num_image_frames, ds.is_reconstructable) == (
            True,
            3,
            expected,
        )


@pytest.mark.parametrize(
    ("image_type", "reconstructable"),
    [("RECON TOMO", True), ("RECON GATED TOMO", True), ("TOMO", False), ("STATIC", False)],
)
def test_nm_multiframe_needs_recon_tomo(
    store: Store, tmp_path: Path, image_type: str, reconstructable: bool
) -> None:
    # processMultiframe -> isNMReconstructable: ImageType[2] RECON TOMO or RECON GATED TOMO
    series = generate_uid()
    nm = image(base(uid.NuclearMedicineImageStorage, "NM", series), frames=4)
    nm.ImageType = ["ORIGINAL", "PRIMARY", image_type, "EMISSION"]
    nm.PixelSpacing, nm.SliceThickness = [4, 4], 4
    nm.DetectorInformationSequence = sequence(
        {"ImageOrientationPatient": [1, 0, 0, 0, 1, 0], "ImagePositionPatient": [0, 0, 0]}
    )
    add(store, [nm], tmp_path)
    assert one(store, series).is_reconstructable is reconstructable


# ------------------------------------------------------------------------ dynamic volumes


def _pet(series: str, number: int, z: float, time: float) -> Dataset:
    ds = ct_slice(series, number, z)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = (
        uid.PositronEmissionTomographyImageStorage
    )
    ds.Modality = "PT"
    ds.FrameReferenceTime = time
    return ds


def test_dynamic_pet_is_reconstructable_from_its_first_time_point(
    store: Store, tmp_path: Path
) -> None:
    # getDisplaySetInfo: getDynamicVolumeInfo (splitImageIdsBy4DTags: same positions repeated,
    # told apart by PetFrameReferenceTime) -> isDisplaySetReconstructable(first time point)
    dynamic, static = generate_uid(), generate_uid()
    frames = [_pet(dynamic, 1 + t * 3 + k, float(k), 1000.0 * (t + 1))
              for t in range(2) for k in range(3)]  # fmt: skip
    repeated = [_pet(static, 1 + t * 3 + k, float(k), 1000.0) for t in range(2) for k in range(3)]
    add(store, frames + repeated, tmp_path)
    ds = one(store, dynamic)
    assert ds.is_reconstructable and ds.extras["is_dynamic_volume"]
    assert len(ds.instances) == 6 and ds.num_image_frames == 6
    same_time = one(store, static)  # no tag tells the time points apart: one irregular stack
    assert not same_time.extras["is_dynamic_volume"] and not same_time.is_reconstructable


def test_multiframe_time_slot_vector_is_dynamic(store: Store, tmp_path: Path) -> None:
    # splitImageIdsBy4DTags -> handleMultiframe4D: TimeSlotVector, one value per frame
    series = generate_uid()
    nm = _measures(enhanced_ct(series, [0, 1, 0, 1]))
    nm.TimeSlotVector = [1, 1, 2, 2]
    add(store, [nm], tmp_path)
    assert one(store, series).extras["is_dynamic_volume"]


# ------------------------------------------------------------------------ splitting


def test_a_ct_series_holding_a_secondary_capture_gives_two_display_sets(
    store: Store, tmp_path: Path
) -> None:
    # DisplaySetService.makeDisplaySetForInstances splits by SOPClassUID before the handlers
    series = generate_uid()
    capture = ct_slice(series, 4, 3.0)
    capture.SOPClassUID = capture.file_meta.MediaStorageSOPClassUID = (
        uid.SecondaryCaptureImageStorage
    )
    add(store, [*ct_stack(series, {1: 0.0, 2: 1.0, 3: 2.0}), capture], tmp_path)
    ct, sc = series_sets(store, series)
    assert (len(ct.instances), ct.is_reconstructable) == (3, True)
    assert (len(sc.instances), sc.instances[0].sop_class_uid) == (
        1,
        uid.SecondaryCaptureImageStorage,
    )


def test_labels_are_written_as_ohif_writes_them(store: Store, tmp_path: Path) -> None:
    # makeDisplaySet: SeriesDescription || `Series ${SeriesNumber} - ${Modality}`
    plain, described = generate_uid(), generate_uid()
    add(store, [ct_slice(plain, 1, 0.0, series_number=7),
                ct_slice(described, 1, 0.0, description="Chest")], tmp_path)  # fmt: skip
    assert one(store, plain).label == "Series 7 - CT"
    assert one(store, described).label == "Chest"

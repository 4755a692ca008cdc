"""OHIF's volume rules: ``isDisplaySetReconstructable`` and ``sortInstancesByPosition``.

Followed line by line from OHIF 3.13.2 ``platform/core/src/utils/isDisplaySetReconstructable.js``
and ``sortInstancesByPosition.ts``: reconstructability is decided by geometry for any modality;
single-frame images need the same rows, columns, samples per pixel and orientation (within
0.01) and positions on a uniform grid (each gap within 20% of the mean gap, or a whole multiple
of it: missing slices are allowed); a multi-frame image needs pixel measures, orientation and
position (in functional groups or at the top level), and an NM one must be RECON TOMO or RECON
GATED TOMO. Values are compared the JavaScript way (see :mod:`.jsvalues`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..models import Instance
from . import jsvalues as js

SPACING_TOLERANCE = 0.2
"""OHIF's ``spacingTolerance``: a gap may differ from the mean gap by 20% of it."""

IOP_TOLERANCE = 0.01
"""OHIF's ``iopTolerance``: largest difference between direction cosines of the same plane."""


@dataclass(frozen=True)
class Reconstructable:
    """The result of :func:`is_display_set_reconstructable` (OHIF's ``{value, ...}``)."""

    value: bool
    average_spacing_between_frames: float | None = None
    missing_frames: int = 0


def is_display_set_reconstructable(instances: Sequence[Instance]) -> Reconstructable:
    """OHIF's ``isDisplaySetReconstructable(instances)`` (without the GPU texture size check)."""
    if not instances:
        return Reconstructable(False)
    md = instances[0].metadata
    multiframe = js.number(md.get("NumberOfFrames") or 0) > 1
    if not multiframe and len(instances) == 1:
        return Reconstructable(False)
    if not multiframe and not all(js.truthy(i.metadata.get("ImagePositionPatient"))
                                  for i in instances):  # fmt: skip
        return Reconstructable(False)
    ordered = sort_instances_by_position(instances)
    if multiframe:
        return Reconstructable(_multiframe_reconstructable(ordered[0].metadata))
    return _singleframe_reconstructable([i.metadata for i in ordered])


def sort_instances_by_position(instances: Sequence[Instance]) -> list[Instance]:
    """OHIF's ``sortInstancesByPosition``: along the normal of the middle image, furthest first.

    Unchanged when there is at most one instance or the middle one lacks position or orientation.
    """
    if len(instances) <= 1:
        return list(instances)
    reference = instances[len(instances) // 2].metadata
    ref_position = reference.get("ImagePositionPatient")
    orientation = reference.get("ImageOrientationPatient")
    if not js.truthy(ref_position) or not js.truthy(orientation):
        return list(instances)
    return sort_by_distance(instances, _as_list(ref_position), _as_list(orientation), sign=1)


def sort_by_distance(
    instances: Sequence[Instance], reference: list[Any], orientation: list[Any], *, sign: int
) -> list[Instance]:
    """Sort by ``sign * (reference - position) . normal``, largest first, as OHIF does.

    ``sortInstancesByPosition`` subtracts the position from the reference (``sign=1``),
    ``sortImagesByPatientPosition`` the reference from the position (``sign=-1``); both sort
    with ``(a, b) => b.distance - a.distance`` (NaN compares equal, like JavaScript's sort).
    """
    normal = js.cross(js.vec3(orientation[0:3]), js.vec3(orientation[3:6]))
    pairs = []
    for inst in instances:
        position = _as_list(inst.metadata.get("ImagePositionPatient"))
        delta = js.sub(reference, position) if sign > 0 else js.sub(position, reference)
        pairs.append((js.dot(delta, normal), inst))

    def compare(a: tuple[float, Instance], b: tuple[float, Instance]) -> int:
        diff = b[0] - a[0]
        return 0 if math.isnan(diff) or diff == 0 else (1 if diff > 0 else -1)

    return [inst for _, inst in sorted(pairs, key=functools.cmp_to_key(compare))]


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, list):
        return value + [None] * (3 - len(value)) if len(value) < 3 else value
    return [value, None, None]


def is_same_orientation(a: Any, b: Any) -> bool:
    """OHIF's ``_isSameOrientation``: six direction cosines each within 0.01 (NaN: different)."""
    if a is None or b is None:
        return False
    a_list = a if isinstance(a, list) else [a]
    b_list = b if isinstance(b, list) else [b]
    for i in range(6):
        x = a_list[i] if i < len(a_list) else None
        y = b_list[i] if i < len(b_list) else None
        if not abs(js.number(x) - js.number(y)) < IOP_TOLERANCE:
            return False
    return True


def _singleframe_reconstructable(mds: Sequence[Mapping[str, Any]]) -> Reconstructable:
    first = mds[0]
    rows, columns = js.to_number(first.get("Rows")), js.to_number(first.get("Columns"))
    samples = js.to_number(first.get("SamplesPerPixel"))
    orientation = js.to_number(first.get("ImageOrientationPatient"))
    for md in mds[1:]:
        if (
            not js.strict_equal(md.get("Rows"), rows)
            or not js.strict_equal(md.get("Columns"), columns)
            or not js.strict_equal(md.get("SamplesPerPixel"), samples)
            or not is_same_orientation(js.to_number(md.get("ImageOrientationPatient")), orientation)
        ):
            return Reconstructable(False)
    if len(mds) <= 2:
        return Reconstructable(True)
    first_position = js.to_number(first.get("ImagePositionPatient"))
    last_position = js.to_number(mds[-1].get("ImagePositionPatient"))
    if not js.truthy(first_position) or not js.truthy(last_position):
        return Reconstructable(False)
    average = _distance(first_position, last_position) / (len(mds) - 1)
    missing = 0
    previous = first_position
    for md in mds[1:]:
        position = js.to_number(md.get("ImagePositionPatient"))
        issue = spacing_issue(_distance(position, previous), average)
        if issue is None:
            pass
        elif issue < 0:
            return Reconstructable(False)
        else:
            missing += issue
        previous = position
    return Reconstructable(True, average, missing)


def spacing_issue(spacing: float, average: float) -> int | None:
    """OHIF's ``_getSpacingIssue``: None if regular, else missing frames (>= 0), -1 if irregular."""
    if abs(spacing - average) < average * SPACING_TOLERANCE:
        return None
    if average == 0 or math.isnan(average) or math.isnan(spacing):
        return -1
    count = js.js_round(spacing / average)
    if count == 0 or math.isinf(count):
        return -1
    error = abs(spacing - count * average) / count
    if error < SPACING_TOLERANCE * average:
        return int(count) - 1
    return -1


def _distance(a: Any, b: Any) -> float:
    """OHIF's ``_getPerpendicularDistance`` (in fact the Euclidean distance of two positions)."""
    a_list = a if isinstance(a, list) else [a]
    b_list = b if isinstance(b, list) else [b]
    total = 0.0
    for i in range(3):
        x = a_list[i] if i < len(a_list) else None
        y = b_list[i] if i < len(b_list) else None
        total += (js.number(x) - js.number(y)) ** 2
    return math.sqrt(total)


def has_pixel_measurements(md: Mapping[str, Any]) -> bool:
    """OHIF's ``hasPixelMeasurements`` of a multi-frame image."""
    per_frame = js.first(md.get("PerFrameFunctionalGroupsSequence"))
    shared = md.get("SharedFunctionalGroupsSequence")
    return (
        js.truthy(js.item(per_frame, "PixelMeasuresSequence"))
        or js.truthy(js.item(shared, "PixelMeasuresSequence"))
        or (
            js.truthy(md.get("PixelSpacing"))
            and (js.truthy(md.get("SliceThickness")) or js.truthy(md.get("SpacingBetweenFrames")))
        )
    )


def has_orientation(md: Mapping[str, Any]) -> bool:
    """OHIF's ``hasOrientation`` of a multi-frame image."""
    per_frame = js.first(md.get("PerFrameFunctionalGroupsSequence"))
    shared = md.get("SharedFunctionalGroupsSequence")
    detector = js.first(md.get("DetectorInformationSequence"))
    return (
        js.truthy(js.item(shared, "PlaneOrientationSequence"))
        or js.truthy(js.item(per_frame, "PlaneOrientationSequence"))
        or js.truthy(md.get("ImageOrientationPatient"))
        or js.truthy(js.item(detector, "ImageOrientationPatient"))
    )


def has_position(md: Mapping[str, Any]) -> bool:
    """OHIF's ``hasPosition`` of a multi-frame image."""
    per_frame = js.first(md.get("PerFrameFunctionalGroupsSequence"))
    detector = js.first(md.get("DetectorInformationSequence"))
    return (
        js.truthy(js.item(per_frame, "PlanePositionSequence"))
        or js.truthy(js.item(per_frame, "CTPositionSequence"))
        or js.truthy(md.get("ImagePositionPatient"))
        or js.truthy(js.item(detector, "ImagePositionPatient"))
    )


def _multiframe_reconstructable(md: Mapping[str, Any]) -> bool:
    if not (has_pixel_measurements(md) and has_orientation(md) and has_position(md)):
        return False
    modality = md.get("Modality")
    if isinstance(modality, str) and "NM" in modality:
        return js.at(md.get("ImageType"), 2) in ("RECON TOMO", "RECON GATED TOMO")
    return True

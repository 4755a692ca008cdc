"""Slice geometry: order images along the slice normal and tell whether a stack is a volume.

OHIF's ``isDisplaySetReconstructable``: the images share orientation and dimensions, and their
positions along the normal are evenly spaced (no gaps, no duplicates).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

from ..models import Instance

Vector = tuple[float, float, float]

ORIENTATION_TOLERANCE = 1e-3
"""Largest difference between direction cosines still taken as the same orientation."""

SPACING_TOLERANCE = 0.05
"""Largest deviation of one slice gap from the mean gap, as a fraction of the mean."""


def _floats(value: Any, n: int) -> tuple[float, ...] | None:
    if not isinstance(value, list | tuple) or len(value) != n:
        return None
    try:
        return tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None


def _cross(a: Vector, b: Vector) -> Vector:
    return (a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0])


def _dot(a: Sequence[float], b: Sequence[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def normal(orientation: Sequence[float]) -> Vector:
    """The slice normal (row cosine x column cosine) of an ImageOrientationPatient value."""
    row = (orientation[0], orientation[1], orientation[2])
    col = (orientation[3], orientation[4], orientation[5])
    return _cross(row, col)


def _same(a: Sequence[float], b: Sequence[float]) -> bool:
    return all(abs(x - y) <= ORIENTATION_TOLERANCE for x, y in zip(a, b, strict=True))


def _first_item(md: Mapping[str, Any], *path: str) -> Mapping[str, Any] | None:
    node: Any = md
    for key in path:
        items = node.get(key) if isinstance(node, Mapping) else None
        if not isinstance(items, list) or not items or not isinstance(items[0], Mapping):
            return None
        node = items[0]
    return node if isinstance(node, Mapping) else None


def plane(md: Mapping[str, Any]) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """(ImageOrientationPatient, ImagePositionPatient) of a single-frame image, if both valid."""
    orientation = _floats(md.get("ImageOrientationPatient"), 6)
    position = _floats(md.get("ImagePositionPatient"), 3)
    if orientation is None or position is None:
        return None
    return orientation, position


def frame_planes(md: Mapping[str, Any]) -> list[tuple[tuple[float, ...], tuple[float, ...]]] | None:
    """Per-frame (orientation, position) of an enhanced multi-frame image, if all are present."""
    frames = md.get("PerFrameFunctionalGroupsSequence")
    if not isinstance(frames, list) or not frames:
        return None
    shared = _first_item(md, "SharedFunctionalGroupsSequence", "PlaneOrientationSequence")
    shared_orientation = _floats(shared.get("ImageOrientationPatient"), 6) if shared else None
    out = []
    for frame in frames:
        if not isinstance(frame, Mapping):
            return None
        own = _first_item(frame, "PlaneOrientationSequence")
        orientation = _floats(own.get("ImageOrientationPatient"), 6) if own else shared_orientation
        pos_item = _first_item(frame, "PlanePositionSequence")
        position = _floats(pos_item.get("ImagePositionPatient"), 3) if pos_item else None
        if orientation is None or position is None:
            return None
        out.append((orientation, position))
    return out


def _evenly_spaced(planes: Sequence[tuple[tuple[float, ...], tuple[float, ...]]]) -> bool:
    """True if all planes share an orientation and are evenly spaced along its normal."""
    if len(planes) < 2:
        return False
    orientation = planes[0][0]
    if not all(_same(orientation, o) for o, _ in planes):
        return False
    n = normal(orientation)
    distances = sorted(_dot(p, n) for _, p in planes)
    gaps = [b - a for a, b in itertools.pairwise(distances)]
    mean = sum(gaps) / len(gaps)
    if mean <= 1e-6:
        return False
    return all(abs(g - mean) <= SPACING_TOLERANCE * mean for g in gaps)


def is_reconstructable_stack(instances: Sequence[Instance]) -> bool:
    """True if single-frame ``instances`` form a volume (>= 2 images, same plane, even spacing)."""
    if len(instances) < 2:
        return False
    dims = {(i.rows, i.columns) for i in instances}
    if len(dims) != 1:
        return False
    planes = [plane(i.metadata) for i in instances]
    if any(p is None for p in planes):
        return False
    return _evenly_spaced([p for p in planes if p is not None])


def is_reconstructable_multiframe(instance: Instance) -> bool:
    """True if an enhanced multi-frame image's frames form a volume."""
    planes = frame_planes(instance.metadata)
    return planes is not None and _evenly_spaced(planes)


def sort_by_position(instances: Sequence[Instance]) -> list[Instance]:
    """Single-frame images ordered along the slice normal, furthest first (as OHIF sorts).

    For an axial series that is head to feet. Images without geometry keep their order at the end.
    """
    located: list[tuple[float, int, Instance]] = []
    rest: list[Instance] = []
    for index, inst in enumerate(instances):
        p = plane(inst.metadata)
        if p is None:
            rest.append(inst)
        else:
            located.append((_dot(p[1], normal(p[0])), index, inst))
    located.sort(key=lambda t: (-t[0], t[1]))
    return [inst for _, _, inst in located] + rest

"""OHIF's instance order: ``sortByInstanceNumber`` and ``ImageSet.sort``.

From OHIF 3.13.2 ``platform/core/src/utils/sortStudy.ts`` and ``classes/ImageSet.ts``: instances
are ordered by ``parseInt(InstanceNumber) || 0`` (a missing or unparsable number sorts as 0),
then by SOPInstanceUID; a reconstructable stack whose images share an orientation is then
ordered by position along the slice normal (``sortImagesByPatientPosition``).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import Any

from ..models import Instance
from . import jsvalues as js
from .reconstructable import is_same_orientation, sort_by_distance

_INT_PREFIX = re.compile(r"^\s*([+-]?[0-9]+)")
_MAX_DIGITS = 400
"""Digits beyond which parseInt's result is infinite in JavaScript (past 1.8e308)."""


def parse_int(value: Any) -> int | None:
    """JavaScript ``parseInt(value)``; None for NaN."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, float):
        return None if value != value or value in (float("inf"), float("-inf")) else int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, list):
        value = ",".join("" if v is None else str(v) for v in value)
    match = _INT_PREFIX.match(str(value))
    if match is None:
        return None
    digits = str(match.group(1))
    if len(digits) > _MAX_DIGITS:  # JavaScript's parseInt gives +-Infinity; Python refuses
        return int(-(10**_MAX_DIGITS) if digits.startswith("-") else 10**_MAX_DIGITS)
    return int(digits)


def _compare(a: Any, b: Any) -> int:
    """OHIF's ``compare`` in ``sortStudy.ts`` (falsy values first)."""
    if a == b:
        return 0
    if not js.truthy(a) and js.truthy(b):
        return -1
    if not js.truthy(b) and js.truthy(a):
        return 1
    return -1 if a < b else 1


def compare_by_instance_number(a: Instance, b: Instance) -> int:
    """OHIF's ``sortByInstanceNumber``: InstanceNumber (missing: 0), then SOPInstanceUID."""
    a_number = parse_int(a.metadata.get("InstanceNumber")) or 0
    b_number = parse_int(b.metadata.get("InstanceNumber")) or 0
    if a_number != b_number:
        return a_number - b_number
    return _compare(a.sop_instance_uid, b.sop_instance_uid)


def sort_by_instance_number(instances: Sequence[Instance]) -> list[Instance]:
    """OHIF's ``sortStudyInstances`` with its default criterion."""
    return sorted(instances, key=functools.cmp_to_key(compare_by_instance_number))


def is_valid_for_position_sort(instances: Sequence[Instance]) -> bool:
    """OHIF's ``isValidForPositionSort``: >1 image, the first has position and orientation, and
    all share the first one's orientation (``areAllImageOrientationsEqual``)."""
    if len(instances) <= 1:
        return False
    md = instances[0].metadata
    if not js.truthy(md.get("ImagePositionPatient")) or not js.truthy(
        md.get("ImageOrientationPatient")
    ):
        return False
    orientation = js.to_number(md.get("ImageOrientationPatient"))
    return all(
        is_same_orientation(js.to_number(i.metadata.get("ImageOrientationPatient")), orientation)
        for i in instances[1:]
    )


def image_set_order(instances: Sequence[Instance], is_reconstructable: bool) -> list[Instance]:
    """OHIF's ``ImageSet.sort`` with the default customization (no named sort function)."""
    if not is_reconstructable or not is_valid_for_position_sort(instances):
        return sort_by_instance_number(instances)
    md = instances[0].metadata
    reference = md.get("ImagePositionPatient")
    orientation = md.get("ImageOrientationPatient")
    return sort_by_distance(instances, _three(reference), _three(orientation), sign=-1)


def _three(value: Any) -> list[Any]:
    values = value if isinstance(value, list) else [value]
    return values + [None] * max(0, 6 - len(values))

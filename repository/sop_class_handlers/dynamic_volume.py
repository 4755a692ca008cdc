"""Dynamic (4D) volumes: cornerstone's ``splitImageIdsBy4DTags`` as OHIF's stack handler uses it.

OHIF 3.13.2's stack handler asks ``getDynamicVolumeInfo(imageIds)`` whether a display set is a
time series of volumes; if so, reconstructability is decided on the first time point only. This
module follows ``@cornerstonejs/metadata``'s ``splitImageIdsBy4DTags``: a multi-frame image
split by TimeSlotVector; single-frame images split by cardiac trigger (StackID,
InStackPositionNumber, TriggerTime), else grouped by position, and each position's images told
apart by the first of TemporalPositionIdentifier, DiffusionBValue, TriggerTime, EchoTime,
(EchoNumber), the Philips, Siemens and GE private b-values, or the PET FrameReferenceTime that
gives every image of a position a different value, the same set at every position.
"""

from __future__ import annotations

import base64
import math
import struct
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..models import Instance
from . import jsvalues as js

Getter = Callable[[Mapping[str, Any]], float]


def time_points(instances: Sequence[Instance]) -> list[list[Instance]] | None:
    """The instances of each time point when they form a dynamic volume, else None.

    For a multi-frame image the result holds that one image (its frames are the time points).
    """
    if not instances:
        return None
    first = instances[0].metadata
    frames = js.number(first.get("NumberOfFrames"))
    if frames > 1:
        return [[instances[0]]] if _multiframe_time_slots(first, frames) > 1 else None
    groups = _cardiac_groups(instances) or _tag_groups(instances)
    return groups if groups is not None and len(groups) > 1 else None


def _multiframe_time_slots(md: Mapping[str, Any], frames: float) -> int:
    """``handleMultiframe4D``: the number of distinct TimeSlotVector values (0: not 4D)."""
    slots = md.get("TimeSlotVector")
    if not isinstance(slots, list) or len(slots) != frames:
        return 0
    slices = md.get("SliceVector")
    if slices is not None and (
        not isinstance(slices, list) or len(slices) != frames or any(v is None for v in slices)
    ):
        return 0
    return len({js.number_key(js.number(v)) for v in slots})


def _finite(md: Mapping[str, Any], key: str) -> float | None:
    value = js.parse_float(md.get(key))
    return value if math.isfinite(value) else None


def _cardiac_groups(instances: Sequence[Instance]) -> list[list[Instance]] | None:
    """``handleCardiac4D``: one group per trigger time index across all stack positions."""
    if _finite(instances[0].metadata, "CardiacNumberOfImages") is None:
        return None
    stacks: dict[str, dict[float, list[tuple[float, Instance]]]] = {}
    for inst in instances:
        md = inst.metadata
        stack_id = md.get("StackID")
        position = _finite(md, "InStackPositionNumber")
        trigger = _finite(md, "TriggerTime")
        if stack_id is None or position is None or trigger is None:
            return None
        stacks.setdefault(js.template(stack_id), {}).setdefault(position, []).append(
            (trigger, inst)
        )
    count: int | None = None
    ordered: list[list[Instance]] = []
    for stack_id in sorted(stacks, key=js.number):
        for position in sorted(stacks[stack_id]):
            frames = sorted(stacks[stack_id][position], key=lambda f: f[0])
            if count is None:
                count = len(frames)
            elif len(frames) != count:
                return None
            ordered.append([inst for _, inst in frames])
    if not count:
        return None
    return [[frames[t] for frames in ordered] for t in range(count)]


def _position_groups(instances: Sequence[Instance]) -> list[list[Instance]] | None:
    """``getIPPGroups``: images grouped by ImagePositionPatient, each group the same size > 1.

    The position is cornerstone's image plane module's: ``toFiniteNumber(IPP) || [0, 0, 0]``,
    so images without one share the origin.
    """
    groups: dict[str, list[Instance]] = {}
    for inst in instances:
        groups.setdefault(_position_key(inst.metadata.get("ImagePositionPatient")), []).append(inst)
    sizes = {len(g) for g in groups.values()}
    if len(sizes) != 1 or sizes == {1}:
        return None
    return list(groups.values())


def _position_key(value: Any) -> str:
    if value is None or value == "":
        return "0,0,0"
    values = value if isinstance(value, list) else [value]
    finite = [js.number(v) for v in values]
    return ",".join(js.number_key(v) if math.isfinite(v) else "" for v in finite)


def _tag_groups(instances: Sequence[Instance]) -> list[list[Instance]] | None:
    positions = _position_groups(instances)
    if positions is None:
        return None
    for getter in _GETTERS:
        groups = _split_by(positions, getter)
        if groups is not None:
            return [groups[key] for key in sorted(groups)]
    return None


def _split_by(
    positions: list[list[Instance]], getter: Getter
) -> dict[float, list[Instance]] | None:
    """``test4DTag``: each position's images have distinct values, the same set everywhere."""
    groups: dict[float, list[Instance]] = {}
    first_values: set[float] | None = None
    for images in positions:
        values: set[float] = set()
        for j, inst in enumerate(images):
            raw = getter(inst.metadata)
            value = js.parse_float(raw) if js.truthy(raw) else 0.0
            groups.setdefault(value, []).append(inst)
            values.add(value)
            if len(values) - 1 < j:
                return None
        if first_values is None:
            first_values = values
        elif values != first_values:
            return None
    return groups


def _tag(key: str) -> Getter:
    return lambda md: js.parse_float(md.get(key))


def _inline(value: Any) -> bytes | None:
    data = value.get("InlineBinary") if isinstance(value, Mapping) else None
    return base64.b64decode(data) if isinstance(data, str) else None


def _philips_b_value(md: Mapping[str, Any]) -> float:
    value = md.get("20011003")
    raw = _inline(value)
    if raw is not None:
        return float(struct.unpack("<f", raw[:4])[0]) if len(raw) >= 4 else math.nan
    return js.parse_float(value)


def _siemens_b_value(md: Mapping[str, Any]) -> float:
    value = md.get("0019100c") or md.get("0019100C")
    raw = _inline(value)
    return js.parse_float(raw.decode("latin-1") if raw is not None else value)


def _ge_b_value(md: Mapping[str, Any]) -> float:
    value = md.get("00431039")
    raw = _inline(value)
    parts: Any = raw.decode("latin-1").split("//") if raw is not None else value
    return math.fmod(js.parse_float(js.first(parts)), 100000)


_GETTERS: tuple[Getter, ...] = (
    _tag("TemporalPositionIdentifier"),
    _tag("DiffusionBValue"),
    _tag("TriggerTime"),
    _tag("EchoTime"),
    _tag("EchoNumber"),  # sic: cornerstone asks for "EchoNumber", which no instance has
    _philips_b_value,
    _siemens_b_value,
    _ge_b_value,
    lambda md: md.get("FrameReferenceTime") or 0,
)

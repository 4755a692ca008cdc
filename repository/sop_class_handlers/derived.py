"""SEG, RTSTRUCT and parametric maps as OHIF's handlers make them; key objects and presentation
states (ours: OHIF's basic viewer has no handler for them)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import InvalidValueError
from ..models import Instance
from . import jsvalues as js
from . import sop_classes
from .display_set import DisplaySet
from .handler import HandlerContext, HandlerFunction, SopClassHandler
from .labels import series_label
from .ordering import sort_by_instance_number
from .references import referenced_series


class MissingReferenceError(InvalidValueError):
    """Raised when a derived object's references cannot be read the way OHIF reads them (the
    pipeline turns it into an "unsupported" display set with this reason)."""


def _series_sequence(value: Any) -> list[Mapping[str, Any]]:
    items = value if isinstance(value, list) else [value]
    return [i for i in items if isinstance(i, Mapping)]


def references(sequence: Any, where: str) -> list[dict[str, Any]]:
    """ReferencedSeriesSequence as series UID + referenced SOP instance UIDs.

    OHIF's ``getDisplaySetsForReferences`` iterates every item's ReferencedInstanceSequence and
    throws when one has none; so does this (:class:`MissingReferenceError`).
    """
    out = []
    for ref in _series_sequence(sequence):
        instances = ref.get("ReferencedInstanceSequence")
        if not isinstance(instances, list):
            raise MissingReferenceError(
                f"{where}: a ReferencedSeriesSequence item has no ReferencedInstanceSequence"
            )
        out.append(
            {
                "series_instance_uid": _uid(ref.get("SeriesInstanceUID")),
                "referenced_sop_instance_uids": [
                    _uid(i.get("ReferencedSOPInstanceUID"))
                    for i in instances
                    if isinstance(i, Mapping)
                ],
            }
        )
    return out


def _derived(
    context: HandlerContext,
    instances: Sequence[Instance],
    representative: Instance,
    modality: str,
    referenced: Any,
    sequence: Any,
    *,
    reconstructable: bool = False,
) -> DisplaySet:
    """A derived display set; ``referenced`` is the referenced-series item OHIF reads the series
    UID from; with a ``sequence`` (SEG, RTSTRUCT) reconstructability comes from the display set
    it references (:func:`.pipeline.build_display_sets` fills it in)."""
    md = representative.metadata
    ds = context.display_set(
        instances,
        plugin=_PLUGINS[modality],
        representative=representative,
        modality=modality,
        label=series_label({**md, "SeriesDescription": md.get("SeriesDescription", "")}, modality),
        is_reconstructable=reconstructable,
        is_derived=True,
        referenced_series_instance_uid=_uid(js.item(referenced, "SeriesInstanceUID")),
        num_image_frames=None,
        is_multi_frame=False,
        extras={}
        if sequence is None
        else {
            "referenced_series_sequence": references(
                sequence, f"{modality} {representative.sop_instance_uid}"
            )
        },
    )
    return dataclasses.replace(ds, reconstructable_from_reference=sequence is not None)


_PLUGINS = {"SEG": "dicom-seg", "RTSTRUCT": "dicom-rt", "PMAP": "dicom-pmap"}


def _uid(value: Any) -> str | None:
    """A referenced UID; one stored as several values matches nothing (as in OHIF, where an
    array is never ``===`` a UID)."""
    return value if isinstance(value, str) and value else None


def _first_or_self(sequence: Any) -> Any:
    """``sequence[0] || sequence`` as OHIF's SEG and parametric map handlers read it."""
    return sequence[0] if isinstance(sequence, list) and sequence else sequence


def seg_display_sets(instances: Sequence[Instance], context: HandlerContext) -> list[DisplaySet]:
    """OHIF's ``dicom-seg``: the newest segmentation (last by InstanceNumber) only."""
    newest = sort_by_instance_number(instances)[-1]
    sequence = newest.metadata.get("ReferencedSeriesSequence")
    if not js.truthy(sequence):
        return []
    return [_derived(context, [newest], newest, "SEG", _first_or_self(sequence), sequence)]


def _rt_series_sequence(md: Mapping[str, Any], where: str) -> list[dict[str, Any]]:
    """OHIF's ``_deriveReferencedSeriesSequenceFromFrameOfReferenceSequence``."""
    out: list[dict[str, Any]] = []
    for frame in _series_sequence(md.get("ReferencedFrameOfReferenceSequence")):
        for study in _series_sequence(frame.get("RTReferencedStudySequence")):
            for series in _series_sequence(study.get("RTReferencedSeriesSequence")):
                images = series.get("ContourImageSequence")
                if not isinstance(images, list):
                    raise MissingReferenceError(
                        f"{where}: an RTReferencedSeriesSequence item has no ContourImageSequence"
                    )
                out.append({
                    "SeriesInstanceUID": series.get("SeriesInstanceUID"),
                    "ReferencedInstanceSequence": [
                        {"ReferencedSOPInstanceUID": i.get("ReferencedSOPInstanceUID")}
                        for i in images if isinstance(i, Mapping)
                    ],
                })  # fmt: skip
    return out


def rtstruct_display_sets(
    instances: Sequence[Instance], context: HandlerContext
) -> list[DisplaySet]:
    """OHIF's ``dicom-rt``: one display set of all instances, the newest representing them."""
    ordered = sort_by_instance_number(instances)
    newest = ordered[-1]
    md = newest.metadata
    sequence = md.get("ReferencedSeriesSequence")
    frames = md.get("ReferencedFrameOfReferenceSequence")
    if js.truthy(js.item(frames, "RTReferencedStudySequence")) and not js.truthy(sequence):
        sequence = _rt_series_sequence(md, f"RTSTRUCT {newest.sop_instance_uid}")
    if not js.truthy(sequence):
        return []
    items = _series_sequence(sequence)
    if not items:
        raise MissingReferenceError(f"RTSTRUCT {newest.sop_instance_uid} references no series")
    return [_derived(context, ordered, newest, "RTSTRUCT", items[0], items)]


def pmap_display_sets(instances: Sequence[Instance], context: HandlerContext) -> list[DisplaySet]:
    """OHIF's ``dicom-pmap``: the first instance, reconstructable, modality PMAP."""
    first = instances[0]
    sequence = first.metadata.get("ReferencedSeriesSequence")
    if not js.truthy(sequence):
        return []
    return [
        _derived(context, [first], first, "PMAP", _first_or_self(sequence), None,
                 reconstructable=True)
    ]  # fmt: skip


def per_instance(plugin: str, modality: str) -> HandlerFunction:
    """A handler function making one derived display set per instance, with its referenced series
    (ours, for key objects and presentation states)."""

    def display_sets(instances: Sequence[Instance], context: HandlerContext) -> list[DisplaySet]:
        own = context.series.series_instance_uid
        return [
            context.display_set(
                [inst],
                plugin=plugin,
                modality=context.series.modality or modality,
                is_derived=True,
                referenced_series_instance_uid=referenced_series(
                    inst.metadata, context.series_of_instance, own
                ),
                num_image_frames=0,
                is_multi_frame=False,
            )
            for inst in instances
        ]

    return display_sets


SEG_HANDLER = SopClassHandler("seg", sop_classes.SEG, seg_display_sets)
"""The built-in segmentation handler (OHIF's ``dicom-seg``)."""

RTSTRUCT_HANDLER = SopClassHandler("rtstruct", sop_classes.RTSTRUCT, rtstruct_display_sets)
"""The built-in RT structure set handler (OHIF's ``dicom-rt``)."""

PARAMETRIC_MAP_HANDLER = SopClassHandler(
    "parametric-map", sop_classes.PARAMETRIC_MAP, pmap_display_sets
)
"""The built-in parametric map handler (OHIF's ``dicom-pmap``)."""

PRESENTATION_STATE_HANDLER = SopClassHandler(
    "presentation-state", sop_classes.PRESENTATION_STATES, per_instance("dicom-pr", "PR")
)
"""The built-in presentation state handler (ours)."""

KO_HANDLER = SopClassHandler(
    "key-object-selection", sop_classes.KEY_OBJECT_SELECTION, per_instance("dicom-ko", "KO")
)
"""The built-in key object selection handler (ours)."""

"""Whole-slide microscopy (OHIF's ``DicomMicroscopySopClassHandler``): all pyramid levels of a
series in one display set.

Follows OHIF 3.13.2 ``extensions/cornerstone/src/getSopClassHandlerModule.js``: modality SM, no
image frames counted, the first instance offered represents the series; ``extras`` names the
instance with the fewest frames, which OHIF uses for the thumbnail.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..models import Instance
from . import jsvalues as js
from . import sop_classes
from .display_set import DisplaySet
from .handler import HandlerContext, SopClassHandler
from .labels import series_label


def _frames(inst: Instance) -> float:
    value = js.number(inst.metadata.get("NumberOfFrames"))
    return value if js.truthy(value) else 1.0


def microscopy_display_sets(
    instances: Sequence[Instance], context: HandlerContext
) -> list[DisplaySet]:
    """One display set of every level of the series."""
    first = instances[0]
    thumbnail = first
    for inst in instances:
        if _frames(inst) < _frames(thumbnail):
            thumbnail = inst
    return [
        context.display_set(
            instances,
            plugin="dicom-microscopy",
            representative=first,
            modality="SM",
            label=series_label(first.metadata, "SM"),
            num_image_frames=0,
            is_multi_frame=False,
            extras={"thumbnail_sop_instance_uid": thumbnail.sop_instance_uid},
        )
    ]


HANDLER = SopClassHandler(
    "whole-slide-microscopy", sop_classes.WHOLE_SLIDE, microscopy_display_sets
)
"""The built-in whole-slide microscopy handler."""

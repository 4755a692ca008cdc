"""Structured reports (OHIF's ``dicom-sr`` and ``dicom-sr-3d``): one derived display set per
series, the newest report (last by InstanceNumber) representing it.

Follows OHIF 3.13.2 ``extensions/cornerstone-dicom-sr/src/getSopClassHandlerModule.ts``: the
modality is always SR; the referenced images are only found when the report is loaded, so the
display set names no referenced series.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..models import Instance
from . import sop_classes
from .display_set import DisplaySet
from .handler import HandlerContext, SopClassHandler
from .labels import series_label
from .ordering import sort_by_instance_number


def sr_display_sets(instances: Sequence[Instance], context: HandlerContext) -> list[DisplaySet]:
    """One display set of all the series' reports of this SOP class."""
    ordered = sort_by_instance_number(instances)
    newest = ordered[-1]
    return [
        context.display_set(
            ordered,
            plugin="dicom-sr",
            representative=newest,
            modality="SR",
            label=series_label(newest.metadata, "SR"),
            is_derived=True,
            num_image_frames=None,
            is_multi_frame=False,
        )
    ]


SR_HANDLER = SopClassHandler("sr", sop_classes.SR, sr_display_sets)
"""The built-in structured report handler (OHIF's ``dicom-sr``)."""

SR_3D_HANDLER = SopClassHandler("sr-3d", sop_classes.SR_3D, sr_display_sets)
"""The built-in Comprehensive 3D SR handler (OHIF's ``dicom-sr-3d``)."""

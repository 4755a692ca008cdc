"""The whole-slide microscopy handler: all pyramid levels of a series in one display set."""

from __future__ import annotations

from collections.abc import Sequence

from ..models import Instance
from ..validation import as_int
from . import sop_classes
from .display_set import DisplaySet
from .handler import HandlerContext, SopClassHandler


def _pixels(inst: Instance) -> int:
    md = inst.metadata
    cols = as_int(md.get("TotalPixelMatrixColumns")) or inst.columns or 0
    rows = as_int(md.get("TotalPixelMatrixRows")) or inst.rows or 0
    return cols * rows


def microscopy_display_sets(
    instances: Sequence[Instance], context: HandlerContext
) -> list[DisplaySet]:
    """One display set per series, largest level first; the base level represents it."""
    levels = sorted(instances, key=_pixels, reverse=True)
    image_types = [inst.metadata.get("ImageType") or [] for inst in levels]
    return [
        context.display_set(
            levels,
            plugin="dicom-microscopy",
            representative=levels[0],
            modality=context.series.modality or "SM",
            extras={
                "levels": len({_pixels(i) for i in levels}),
                "image_types": [t[2] if isinstance(t, list) and len(t) > 2 else None
                                for t in image_types],
            },
        )
    ]  # fmt: skip


HANDLER = SopClassHandler(
    "whole-slide-microscopy", sop_classes.WHOLE_SLIDE, microscopy_display_sets
)
"""The built-in whole-slide microscopy handler."""

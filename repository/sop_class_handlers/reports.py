"""Structured reports: one derived display set per series, over the series they report on."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..models import Instance
from . import sop_classes
from .display_set import DisplaySet
from .handler import HandlerContext, SopClassHandler
from .references import referenced_series


def _written(inst: Instance) -> tuple[str, str, int]:
    md = inst.metadata

    def text(key: str) -> str:
        value: Any = md.get(key)
        return value if isinstance(value, str) else ""

    return (text("ContentDate"), text("ContentTime"), inst.instance_number or 0)


def _report_sets(
    instances: Sequence[Instance], context: HandlerContext, plugin: str
) -> list[DisplaySet]:
    ordered = sorted(instances, key=_written)
    newest = ordered[-1]
    return [
        context.display_set(
            ordered,
            plugin=plugin,
            representative=newest,
            modality=context.series.modality or "SR",
            is_derived=True,
            referenced_series_instance_uid=referenced_series(
                newest.metadata, context.series_of_instance, context.series.series_instance_uid
            ),
            num_image_frames=0,
            is_multi_frame=False,
        )
    ]


def sr_display_sets(instances: Sequence[Instance], context: HandlerContext) -> list[DisplaySet]:
    """One HTML display set per series; the newest report (ContentDate/Time) represents it."""
    return _report_sets(instances, context, "html")


def sr_3d_display_sets(instances: Sequence[Instance], context: HandlerContext) -> list[DisplaySet]:
    """Comprehensive 3D SR: one per series, shown by the measurement-aware SR viewer."""
    return _report_sets(instances, context, "dicom-sr")


SR_HANDLER = SopClassHandler("sr", sop_classes.SR, sr_display_sets)
"""The built-in (HTML) structured report handler."""

SR_3D_HANDLER = SopClassHandler("sr-3d", sop_classes.SR_3D, sr_3d_display_sets)
"""The built-in Comprehensive 3D SR handler."""

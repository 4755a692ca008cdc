"""SEG, RTSTRUCT, parametric maps, key objects and presentation states: one derived display set
per instance."""

from __future__ import annotations

from collections.abc import Sequence

from ..models import Instance
from . import sop_classes
from .display_set import DisplaySet
from .handler import HandlerContext, HandlerFunction, SopClassHandler
from .references import referenced_series


def per_instance(plugin: str, modality: str, *, images: bool) -> HandlerFunction:
    """A handler function making one derived display set per instance, with its referenced series.

    ``images`` says whether the instance's frames count as image frames (SEG, parametric map)
    or not (RTSTRUCT, presentation states).
    """

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
                num_image_frames=None if images else 0,
                is_multi_frame=None if images else False,
            )
            for inst in instances
        ]

    return display_sets


SEG_HANDLER = SopClassHandler("seg", sop_classes.SEG, per_instance("dicom-seg", "SEG", images=True))
"""The built-in segmentation handler."""

RTSTRUCT_HANDLER = SopClassHandler(
    "rtstruct", sop_classes.RTSTRUCT, per_instance("dicom-rt", "RTSTRUCT", images=False)
)
"""The built-in RT structure set handler."""

PARAMETRIC_MAP_HANDLER = SopClassHandler(
    "parametric-map",
    sop_classes.PARAMETRIC_MAP,
    per_instance("dicom-pmap", "RWV", images=True),
)
"""The built-in parametric map handler."""

PRESENTATION_STATE_HANDLER = SopClassHandler(
    "presentation-state",
    sop_classes.PRESENTATION_STATES,
    per_instance("dicom-pr", "PR", images=False),
)
"""The built-in presentation state handler."""

KO_HANDLER = SopClassHandler(
    "key-object-selection",
    sop_classes.KEY_OBJECT_SELECTION,
    per_instance("dicom-ko", "KO", images=False),
)
"""The built-in key object selection handler."""

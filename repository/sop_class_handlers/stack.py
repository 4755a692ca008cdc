"""The stack handler: image SOP classes as cornerstone stacks (OHIF's default image handler)."""

from __future__ import annotations

from collections.abc import Sequence

from ..models import Instance
from . import sop_classes
from .display_set import DisplaySet
from .geometry import is_reconstructable_multiframe, is_reconstructable_stack, sort_by_position
from .handler import HandlerContext, SopClassHandler

PLUGIN = "cornerstone"


def _modality(instance: Instance, context: HandlerContext) -> str | None:
    value = instance.metadata.get("Modality")
    if isinstance(value, str) and value:
        return value
    return context.series.modality


def stack_display_sets(instances: Sequence[Instance], context: HandlerContext) -> list[DisplaySet]:
    """One stack per series of single-frame images, one per multi-frame image and per CR/DX/MG.

    Single-frame images keep InstanceNumber order, or, when the stack is a CT/MR/PT/NM volume,
    are ordered along the slice normal.
    """
    sets: list[DisplaySet] = []
    stack: list[Instance] = []
    for inst in instances:
        modality = _modality(inst, context)
        if (inst.number_of_frames or 1) > 1:
            sets.append(
                context.display_set(
                    [inst],
                    plugin=PLUGIN,
                    modality=modality,
                    is_reconstructable=modality in sop_classes.RECONSTRUCTABLE_MODALITIES
                    and is_reconstructable_multiframe(inst),
                )
            )
        elif modality in sop_classes.SINGLE_IMAGE_MODALITIES:
            sets.append(context.display_set([inst], plugin=PLUGIN, modality=modality))
        else:
            stack.append(inst)
    if stack:
        modality = _modality(stack[0], context)
        volume = modality in sop_classes.RECONSTRUCTABLE_MODALITIES and is_reconstructable_stack(
            stack
        )
        ordered = sort_by_position(stack) if volume else stack
        sets.append(
            context.display_set(
                ordered, plugin=PLUGIN, modality=modality, is_reconstructable=volume
            )
        )
    return sets


HANDLER = SopClassHandler("stack", sop_classes.IMAGE, stack_display_sets)
"""The built-in stack handler."""

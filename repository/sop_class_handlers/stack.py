"""The stack handler: OHIF's default image handler (``@ohif/extension-default``, ``stack``).

Follows OHIF 3.13.2 ``extensions/default/src/getSopClassHandlerModule.js``: instances that are
neither image SOP classes (``isImage``) nor have Rows are skipped; each multi-frame image and
each CR, DX or MG image is its own display set; the other images of the series form one stack.
Each display set is ordered by InstanceNumber (``sortStudyInstances``), its first instance
represents it; reconstructability is decided by :mod:`.reconstructable` (on the first time point
of a dynamic volume, :mod:`.dynamic_volume`); then ``ImageSet.sort`` orders a reconstructable
stack by position (:mod:`.ordering`).
"""

from __future__ import annotations

from collections.abc import Sequence

from ..models import Instance
from . import jsvalues as js
from . import sop_classes
from .display_set import DisplaySet
from .dynamic_volume import time_points
from .handler import HandlerContext, SopClassHandler
from .labels import series_label, text
from .ordering import image_set_order, sort_by_instance_number
from .reconstructable import is_display_set_reconstructable

PLUGIN = "cornerstone"
SINGLE_IMAGE_MODALITIES = frozenset({"CR", "DX", "MG"})
"""OHIF's ``isSingleImageModality``: each image of these modalities is its own display set."""


def is_multi_frame(instance: Instance) -> bool:
    """OHIF's ``isMultiFrame``: ``NumberOfFrames > 1``."""
    return js.number(instance.metadata.get("NumberOfFrames")) > 1


def make_display_set(
    instances: Sequence[Instance], context: HandlerContext, *, frames: int | None = None
) -> DisplaySet:
    """OHIF's ``makeDisplaySet``: order, reconstructability, fields and label of one stack."""
    ordered = sort_by_instance_number(instances)
    first = ordered[0]
    dynamic = time_points(ordered)
    volume = is_display_set_reconstructable(dynamic[0] if dynamic else ordered)
    md = first.metadata
    modality = text(md.get("Modality"))
    return context.display_set(
        image_set_order(ordered, volume.value),
        plugin=PLUGIN,
        representative=first,
        modality=modality,
        label=series_label(md, md.get("Modality")),
        is_reconstructable=volume.value,
        num_image_frames=len(ordered) if frames is None else frames,
        is_multi_frame=is_multi_frame(first),
        key=first.sop_instance_uid if len(ordered) == 1 else "",
        extras={
            "is_dynamic_volume": dynamic is not None,
            "average_spacing_between_frames": volume.average_spacing_between_frames,
            "missing_frames": volume.missing_frames,
        },
    )


def stack_display_sets(instances: Sequence[Instance], context: HandlerContext) -> list[DisplaySet]:
    """OHIF's stack ``getDisplaySetsFromSeries`` over instances of one SOP class."""
    sets: list[DisplaySet] = []
    stackable: list[Instance] = []
    for inst in instances:
        md = inst.metadata
        if inst.sop_class_uid not in sop_classes.IS_IMAGE and not js.truthy(md.get("Rows")):
            continue
        if is_multi_frame(inst):
            frames = js.integer(md.get("NumberOfFrames"))
            sets.append(make_display_set([inst], context, frames=frames))
        elif any(js.strict_equal(md.get("Modality"), m) for m in SINGLE_IMAGE_MODALITIES):
            sets.append(make_display_set([inst], context))
        else:
            stackable.append(inst)
    if stackable:
        sets.append(make_display_set(stackable, context))
    return sets


HANDLER = SopClassHandler("stack", sop_classes.STACK, stack_display_sets)
"""The built-in stack handler (OHIF's ``@ohif/extension-default.sopClassHandlerModule.stack``)."""

"""The video handler: video SOP classes, and secondary captures that carry video.

It claims the secondary capture classes too, so it must come before the stack handler; the
secondary captures it declines (still images) go on to the stack.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..models import Instance
from . import sop_classes
from .display_set import DisplaySet
from .handler import HandlerContext, SopClassHandler

VIDEO_MIN_FRAMES = 90
"""A secondary capture with at least this many frames is shown as a video (as in OHIF)."""


def is_video(instance: Instance) -> bool:
    """True for a video SOP class, an MPEG/H.264/HEVC transfer syntax or >= 90 frames."""
    return (
        instance.sop_class_uid in sop_classes.VIDEO
        or instance.transfer_syntax_uid in sop_classes.VIDEO_TRANSFER_SYNTAXES
        or (instance.number_of_frames or 1) >= VIDEO_MIN_FRAMES
    )


def video_display_sets(instances: Sequence[Instance], context: HandlerContext) -> list[DisplaySet]:
    """One display set per video instance; still images are declined."""
    return [
        context.display_set(
            [inst],
            plugin="dicom-video",
            extras={"transfer_syntax_uid": inst.transfer_syntax_uid},
        )
        for inst in instances
        if is_video(inst)
    ]


HANDLER = SopClassHandler(
    "video", sop_classes.VIDEO + sop_classes.SECONDARY_CAPTURE, video_display_sets
)
"""The built-in video handler."""

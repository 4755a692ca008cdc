"""The video handler (OHIF's ``dicom-video``).

Follows OHIF 3.13.2 ``extensions/dicom-video/src/getSopClassHandlerModule.js``: of the
instances offered (video and secondary capture classes) it takes those with an H.264 or HEVC
transfer syntax, every Video Photographic image, and secondary captures with at least 90 frames;
it must come before the stack handler, which takes the rest.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..models import Instance
from . import jsvalues as js
from . import sop_classes
from .display_set import DisplaySet
from .handler import HandlerContext, SopClassHandler
from .labels import series_label, text

VIDEO_MIN_FRAMES = 90
"""A secondary capture with at least this many frames is shown as a video (as in OHIF)."""

_VIDEO_PHOTOGRAPHIC = "1.2.840.10008.5.1.4.1.1.77.1.4.1"


def is_video(instance: Instance) -> bool:
    """OHIF's video filter over one instance."""
    md = instance.metadata
    tsuid = (
        md.get("AvailableTransferSyntaxUID")
        or instance.transfer_syntax_uid
        or md.get("TransferSyntaxUID")
        or md.get("00083002")
    )
    if tsuid in sop_classes.VIDEO_TRANSFER_SYNTAXES:
        return True
    if instance.sop_class_uid == _VIDEO_PHOTOGRAPHIC:
        return True
    return (
        instance.sop_class_uid in sop_classes.VIDEO_SECONDARY_CAPTURE
        and js.number(md.get("NumberOfFrames")) >= VIDEO_MIN_FRAMES
    )


def video_display_sets(instances: Sequence[Instance], context: HandlerContext) -> list[DisplaySet]:
    """One derived display set per video instance; still images are declined."""
    sets = []
    for inst in instances:
        if not is_video(inst):
            continue
        md = inst.metadata
        frames = md.get("NumberOfFrames")
        description = md.get("SeriesDescription", "VIDEO")  # OHIF's destructuring default
        sets.append(
            context.display_set(
                [inst],
                plugin="dicom-video",
                modality=text(md.get("Modality")),
                label=series_label({**md, "SeriesDescription": description}, md.get("Modality")),
                is_derived=True,
                num_image_frames=js.integer(frames) if frames is not None else None,
                is_multi_frame=False,
                extras={"transfer_syntax_uid": inst.transfer_syntax_uid},
            )
        )
    return sets


HANDLER = SopClassHandler("video", sop_classes.VIDEO, video_display_sets)
"""The built-in video handler (OHIF's ``@ohif/extension-dicom-video...dicom-video``)."""

"""imageIds as OHIF builds them, and the frame-aware keys used to look instances up.

The forms (OHIF 3.13.2, ``extensions/default/src/DicomWebDataSource/utils/getImageId.js`` and
``DicomLocalDataSource``): ``wadors:{wadoRoot}/studies/S/series/Se/instances/I/frames/N``
(instance level: frame 1), ``dicomweb:{wadoUriRoot}?requestType=WADO&...[&frame=N]`` and
``dicomfile:{file}[&frame=N]``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from .errors import InvalidValueError

_FRAMES_SUFFIX = re.compile(r"/frames/(\d+)$")
_FRAME_PARAM = re.compile(r"([?&])frame=(\d+)(?=&|$)")


def wadors_image_id(wado_root: str | None, study: str, series: str, sop: str) -> str:
    """``wadors:{root}/studies/S/series/Se/instances/I/frames/1`` (root may be empty)."""
    root = (wado_root or "").rstrip("/")
    return f"wadors:{root}/studies/{study}/series/{series}/instances/{sop}/frames/1"


def wadouri_image_id(wado_uri_root: str, study: str, series: str, sop: str) -> str:
    """``dicomweb:{root}?requestType=WADO&...``, as OHIF's ``buildInstanceWadoUrl``."""
    params = (f"requestType=WADO&studyUID={study}&seriesUID={series}&objectUID={sop}"
              "&contentType=application/dicom&transferSyntax=*")  # fmt: skip
    return f"dicomweb:{wado_uri_root}?{params}"


FILE_PREFIX = "dicomfile:"
"""The scheme of the imageId of an instance read from (or stored in) a local file."""


def file_image_id(path: str | Path) -> str:
    """``dicomfile:<absolute path>`` for a local file."""
    return f"{FILE_PREFIX}{Path(path).resolve()}"


def instance_image_id(
    study: str,
    series: str,
    sop: str,
    *,
    wado_root: str | None = None,
    wado_uri: str | None = None,
    path: str | Path | None = None,
) -> str:
    """The instance-level imageId built for an instance given without one: WADO-RS when the
    series list has a WADO-RS root (OHIF's default ``imageRendering``), else WADO-URI when it
    has a WADO-URI root, else the file it was read from, else a root-less WADO-RS id."""
    if wado_root:
        return wadors_image_id(wado_root, study, series, sop)
    if wado_uri:
        return wadouri_image_id(wado_uri, study, series, sop)
    if path:
        return file_image_id(path)
    return wadors_image_id(None, study, series, sop)


def frame_image_id(image_id: str, frame: int) -> str:
    """The imageId of frame ``frame`` (1-based) of the instance ``image_id`` names, as OHIF's
    ``getImageIdsForInstance`` builds it: ``/frames/N`` for WADO-RS, ``&frame=N`` otherwise."""
    if image_id.startswith("wadors:"):
        base = _FRAMES_SUFFIX.sub("", image_id)
        return f"{base}/frames/{frame}"
    return f"{strip_frame(image_id)}&frame={frame}"


def strip_frame(image_id: str) -> str:
    """``image_id`` without a ``frame=N`` query parameter."""
    stripped = _FRAME_PARAM.sub(lambda m: "?" if m.group(1) == "?" else "", image_id)
    return stripped.replace("?&", "?").rstrip("?")


def requested_frame(image_id: str) -> int | None:
    """The frame number an imageId names (``/frames/N`` or ``frame=N``), None if none."""
    match = _FRAMES_SUFFIX.search(image_id) or _FRAME_PARAM.search(image_id)
    if match is None:
        return None
    digits = match.groups()[-1]
    return int(digits) if len(digits) <= 18 else 2**63  # past any frame (and int()'s limit)


def lookup_keys(image_id: str) -> list[str]:
    """The stored imageIds that a (possibly frame-level) imageId may refer to.

    ``.../frames/N`` maps to the instance-level ``.../frames/1`` and to the bare instance URL;
    a ``frame=N`` query parameter is removed, or replaced by ``frame=1`` (an id stored with
    ``&frame=1`` is found with ``&frame=2``).
    """
    keys = [image_id]
    if _FRAMES_SUFFIX.search(image_id):
        base = _FRAMES_SUFFIX.sub("", image_id)
        keys += [base + "/frames/1", base]
    elif image_id.startswith("wadors:"):
        keys.append(image_id + "/frames/1")  # the instance URL without a frame
    if _FRAME_PARAM.search(image_id):
        keys += [strip_frame(image_id), _FRAME_PARAM.sub(r"\1frame=1", image_id)]
    return list(dict.fromkeys(keys))


def frame_in_range(frame: int | None, number_of_frames: int | None) -> bool:
    """True if ``frame`` (None: the instance itself) is a frame of an instance with
    ``number_of_frames`` frames (None or 0: one frame)."""
    return frame is None or 1 <= frame <= max(number_of_frames or 1, 1)


class _HasImageId(Protocol):
    @property
    def image_id(self) -> str: ...

    @property
    def number_of_frames(self) -> int | None: ...


MAX_LISTED_FRAMES = 1 << 20
"""The most imageIds listed for one instance (a NumberOfFrames up to 2^31 - 1 is legal DICOM, and
a list of that many ids would take the process's memory)."""


def instance_frame_ids(instances: Iterable[_HasImageId]) -> list[str]:
    """One imageId per frame of each instance, in order (OHIF ``getImageIdsForDisplaySet``:
    ``NumberOfFrames > 1`` gives frames 1..N, anything else the instance's own imageId).
    An instance of more than :data:`MAX_LISTED_FRAMES` frames raises InvalidValueError."""
    out: list[str] = []
    for inst in instances:
        frames = inst.number_of_frames or 1
        if frames > MAX_LISTED_FRAMES:
            raise InvalidValueError(
                f"{inst.image_id}: NumberOfFrames {frames} is more than the {MAX_LISTED_FRAMES} "
                "imageIds listed for one instance"
            )
        if frames > 1:
            out += [frame_image_id(inst.image_id, n) for n in range(1, frames + 1)]
        else:
            out.append(inst.image_id)
    return out

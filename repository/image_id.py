"""imageIds as OHIF builds them, and the frame-aware keys used to look instances up."""

from __future__ import annotations

import re
from pathlib import Path

_FRAMES_SUFFIX = re.compile(r"/frames/\d+$")
_FRAME_PARAM = re.compile(r"([?&])frame=\d+(?=&|$)")


def wadors_image_id(wado_root: str | None, study: str, series: str, sop: str) -> str:
    """``wadors:{root}/studies/S/series/Se/instances/I/frames/1`` (root may be empty)."""
    root = (wado_root or "").rstrip("/")
    return f"wadors:{root}/studies/{study}/series/{series}/instances/{sop}/frames/1"


def file_image_id(path: str | Path) -> str:
    """``dicomfile:<absolute path>`` for a local file."""
    return f"dicomfile:{Path(path).resolve()}"


def lookup_keys(image_id: str) -> list[str]:
    """The stored imageIds that a (possibly frame-level) imageId may refer to.

    ``.../frames/N`` maps to the instance-level ``.../frames/1`` and to the bare instance URL;
    a ``frame=N`` query parameter (``&frame=N`` or ``?frame=N``) is removed.
    """
    keys = [image_id]
    if _FRAMES_SUFFIX.search(image_id):
        base = _FRAMES_SUFFIX.sub("", image_id)
        keys += [base + "/frames/1", base]
    stripped = _FRAME_PARAM.sub(lambda m: "?" if m.group(1) == "?" else "", image_id)
    stripped = stripped.replace("?&", "?").rstrip("?")
    if stripped != image_id:
        keys.append(stripped)
    return list(dict.fromkeys(keys))

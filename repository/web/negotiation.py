"""Content negotiation: what the ``Accept`` header asks for, and whether we can produce it.

An Accept header is a list of media ranges with parameters (``multipart/related;
type="application/octet-stream"; transfer-syntax=*``). Requests without one get the default.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from starlette.requests import Request

from .errors import not_acceptable

DICOM_JSON = "application/dicom+json"
EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"


@dataclass(frozen=True)
class MediaRange:
    """One entry of an Accept header."""

    type: str
    params: dict[str, str] = field(default_factory=dict)

    @property
    def part_type(self) -> str | None:
        """For ``multipart/related``, the ``type`` of its parts."""
        return self.params.get("type")


def _split(text: str, sep: str) -> list[str]:
    """Split on ``sep`` outside double quotes."""
    out: list[str] = []
    current: list[str] = []
    quoted = False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == sep and not quoted:
            out.append("".join(current))
            current = []
        else:
            current.append(char)
    out.append("".join(current))
    return [p.strip() for p in out if p.strip()]


def accepted(request: Request) -> list[MediaRange]:
    """The media ranges of the request's Accept header, in the order given, without those of
    quality 0 (``*/*`` if the header is absent or names no media range at all)."""
    items = [_split(item, ";") for item in _split(request.headers.get("accept", ""), ",")]
    items = [item for item in items if item]  # ";;;" names nothing
    if not items:
        return [MediaRange("*/*")]
    ranges = []
    for kind, *params in items:
        values = {}
        for param in params:
            name, _, value = param.partition("=")
            values[name.strip().lower()] = value.strip().strip('"')
        if not _refused(values.get("q")):
            ranges.append(MediaRange(kind.lower(), values))
    return ranges


def _refused(quality: str | None) -> bool:
    """True for a quality of 0 (``q=0``, ``q=0.000``); one that is not a number is ignored."""
    return quality is not None and re.fullmatch(r"0(\.0{0,3})?", quality) is not None


def json_media_type(request: Request) -> str:
    """``application/dicom+json`` or ``application/json`` as accepted, else 406."""
    for media in accepted(request):
        if media.type in ("*/*", "application/*", DICOM_JSON):
            return DICOM_JSON
        if media.type == "application/json":
            return "application/json"
    raise not_acceptable(
        f"cannot produce {request.headers.get('accept')!r}: this resource is {DICOM_JSON}"
    )

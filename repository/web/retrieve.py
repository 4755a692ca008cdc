"""WADO-RS retrieve (PS3.18 10.4): whole instances, frames and bulk data, from recorded files.

Frames answer ``multipart/related; type="application/octet-stream"``: with
``transfer-syntax=*`` (what OHIF asks for) or the stored syntax, the frames as stored; with
explicit VR little endian (also the default when no syntax is named), decoded by pydicom where it
can (406 where it cannot). Each part carries ``Content-Type: application/octet-stream;
transfer-syntax=<UID>``, which OHIF needs to decode compressed frames.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from pydicom.uid import UID
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    MalformedRangeHeader,
    RangeNotSatisfiable,
    Response,
    StreamingResponse,
)

from . import frames as frame_data
from .errors import WebError, bad_request, not_acceptable, path_uids
from .files import BulkLocation, bulk_location, find_instance
from .negotiation import EXPLICIT_VR_LITTLE_ENDIAN, MediaRange, accepted
from .numbers import check_byte_ranges
from .routing import read_engine

OCTET = "application/octet-stream"
DICOM = "application/dicom"
IMPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2"


FILE_CHUNK = 1 << 20
"""Bytes of a file read at a time into an answer."""
PIXEL_DATA = 0x7FE00010


@dataclass(frozen=True)
class FileRegion:
    """``length`` bytes of a file from ``offset``: a body sent a chunk at a time, from
    ``handle`` when the file was opened already (:func:`opened`)."""

    path: Path
    offset: int = 0
    length: int | None = None  # to the end of the file
    handle: BinaryIO | None = field(default=None, compare=False)

    def chunks(self) -> Iterator[bytes]:
        """The region, :data:`FILE_CHUNK` bytes at a time."""
        left = self.length
        with self.handle or self.path.open("rb") as handle:
            handle.seek(self.offset)
            while left is None or left > 0:
                chunk = handle.read(FILE_CHUNK if left is None else min(FILE_CHUNK, left))
                if not chunk:
                    return
                yield chunk
                left = None if left is None else left - len(chunk)


def opened(path: Path, offset: int = 0, length: int | None = None) -> FileRegion:
    """A region of ``path`` opened now, before the answer starts: a DELETE that unlinks the
    file afterwards does not cut the answer short (the open file stays readable), and one that
    came before is a 404 (:func:`.errors.file_gone`), not a 500 halfway through."""
    return FileRegion(path, offset, length, path.open("rb"))


def multipart(
    parts: Iterable[tuple[str, bytes | Path | FileRegion]], part_type: str
) -> StreamingResponse:
    """A streamed ``multipart/related`` response of ``(Content-Type, body)`` parts; a body given
    as a file (or a region of one) is read a chunk at a time (never held whole)."""
    boundary = secrets.token_hex(16)

    def body() -> Iterator[bytes]:
        for content_type, data in parts:
            yield f"--{boundary}\r\nContent-Type: {content_type}\r\n\r\n".encode()
            if isinstance(data, bytes):
                yield data
            else:
                yield from (FileRegion(data) if isinstance(data, Path) else data).chunks()
            yield b"\r\n"
        yield f"--{boundary}--\r\n".encode()

    media = f'multipart/related; type="{part_type}"; boundary={boundary}'
    return StreamingResponse(body(), media_type=media)


def _frame_syntax(request: Request, stored: str) -> str:
    """The transfer syntax to send frames in, from the Accept header (else 406)."""
    for media in accepted(request):
        part = media.part_type if media.type == "multipart/related" else None
        if media.type in ("*/*", "multipart/*") or (media.type == "multipart/related" and (
            part in (None, OCTET, "*/*", "application/*")
        )):  # fmt: skip
            syntax = media.params.get("transfer-syntax", EXPLICIT_VR_LITTLE_ENDIAN)
            if media.type != "multipart/related" and "transfer-syntax" not in media.params:
                syntax = "*"
            if syntax in ("*", stored, EXPLICIT_VR_LITTLE_ENDIAN):
                return stored if syntax == "*" else syntax
    raise not_acceptable(
        f'frames are served as multipart/related; type="{OCTET}" with transfer-syntax=* '
        f"(stored: {stored}) or {EXPLICIT_VR_LITTLE_ENDIAN}, not {request.headers.get('accept')!r}"
    )


def _cut(path: Path, numbers: list[int], count: int, syntax: str) -> Iterator[bytes]:
    """The frames in ``syntax``: read from their places in the file when they are sent as
    stored (or native), else cut from the whole dataset (decoded, big endian, deflated)."""
    pixels = frame_data.locate(path)
    if pixels is not None:
        stored = frame_data.stored_syntax(pixels.ds)
        if syntax == stored or not UID(stored).is_compressed:
            return frame_data.frames_from_file(path, pixels, numbers, count)
        frame_data.check_decoded_size(pixels.ds, path.name)
        decoded = frame_data.decoded_from_file(path, stored, numbers)
        if decoded is not None:
            return iter(decoded)
    ds = frame_data.read(path)
    stored = frame_data.stored_syntax(ds)
    produce = frame_data.stored_frames if syntax == stored else frame_data.decoded_frames
    return produce(ds, numbers, count)


def _frames(path: Path, numbers: list[int], count: int, syntax: str) -> list[tuple[str, bytes]]:
    content_type = f"{OCTET}; transfer-syntax={syntax}"
    try:
        return [(content_type, data) for data in _cut(path, numbers, count, syntax)]
    except (WebError, FileNotFoundError):  # a file deleted meanwhile: 404 (.errors.file_gone)
        raise
    except Exception as error:  # pydicom raises many kinds for damaged pixel data
        raise WebError(422, f"cannot cut frames from {path.name}: {error}") from None


async def frames(request: Request) -> Response:
    """``GET .../instances/{instance}/frames/{frames}``."""
    uids = path_uids(request, "study", "series", "instance")
    stored = await run_in_threadpool(find_instance, await read_engine(request), uids)
    path = stored.require_file()
    text = str(request.path_params["frames"])
    numbers = frame_data.frame_numbers(text, stored.number_of_frames or 1)
    syntax = _frame_syntax(request, stored.transfer_syntax_uid or IMPLICIT_VR_LITTLE_ENDIAN)
    count = stored.number_of_frames or 1
    if request.method == "HEAD":  # the headers only: no frame is cut
        return Response(media_type=f'multipart/related; type="{OCTET}"')
    parts = await run_in_threadpool(_frames, path, numbers, count, syntax)
    return multipart(parts, OCTET)


def _instance_form(request: Request) -> str:
    """``single`` for application/dicom, ``multipart`` for multipart/related, else 406."""
    for media in accepted(request):
        syntax = media.params.get("transfer-syntax", "*")
        if media.type == "multipart/related" and media.part_type in (None, DICOM):
            return "multipart" if syntax == "*" else _syntax_form(media, "multipart")
        if media.type in (DICOM, "*/*", "application/*"):
            return "single" if syntax == "*" else _syntax_form(media, "single")
    raise not_acceptable(f"instances are served as {DICOM}, not {request.headers.get('accept')!r}")


def _syntax_form(media: MediaRange, form: str) -> str:
    return f"{form} {media.params['transfer-syntax']}"


async def instance(request: Request) -> Response:
    """``GET .../instances/{instance}``: the stored file, as it was received."""
    uids = path_uids(request, "study", "series", "instance")
    form = _instance_form(request)
    stored = await run_in_threadpool(find_instance, await read_engine(request), uids)
    path = stored.require_file()
    if " " in form:
        form, syntax = form.split(" ", 1)
        if syntax != stored.transfer_syntax_uid:
            raise not_acceptable(
                f"instance {uids[2]} is stored in {stored.transfer_syntax_uid}; this server "
                f"does not transcode whole instances (ask for transfer-syntax=*)"
            )
    if form == "single" and "range" in request.headers:  # Starlette answers ranges
        _check_range(request, path)
        return FileResponse(path, media_type=DICOM, stat_result=path.stat())
    region = await run_in_threadpool(opened, path)
    if form != "single":
        return multipart([(DICOM, region)], DICOM)
    assert region.handle is not None
    size = os.fstat(region.handle.fileno()).st_size
    headers = {"Content-Length": str(size), "Accept-Ranges": "bytes"}
    return StreamingResponse(region.chunks(), media_type=DICOM, headers=headers)


def _check_range(request: Request, path: Path) -> None:
    """A ``Range`` header the file cannot answer is a JSON error (Starlette's rules: 400 when
    malformed, 416 when outside the file), not Starlette's plain-text one."""
    header = request.headers.get("range")
    if header is None:
        return
    check_byte_ranges(header)
    try:
        FileResponse._parse_range_header(header, path.stat().st_size)
    except MalformedRangeHeader as error:
        raise bad_request(f"Range {header[:80]!r}: {error.content or 'malformed'}") from None
    except RangeNotSatisfiable as error:
        size = error.max_size
        message = f"Range {header[:80]!r}: outside the {size} bytes of the instance"
        raise WebError(416, message, headers={"Content-Range": f"bytes */{size}"}) from None


def _bulk_value(location: BulkLocation) -> bytes | FileRegion:
    """Where the value is in the file (sent a chunk at a time), else the value read whole."""
    if location.offset is not None and location.length is not None:
        return opened(location.path, location.offset, location.length)
    if location.tag == PIXEL_DATA and (span := frame_data.pixel_data_span(location.path)):
        return opened(location.path, *span)
    import pydicom

    ds = pydicom.dcmread(location.path, force=True)
    element = ds.get(location.tag) if location.tag is not None else None
    value = element.value if element is not None else b""
    return value if isinstance(value, bytes) else bytes(value or b"")


async def bulkdata(request: Request) -> Response:
    """``GET .../instances/{instance}/bulkdata/{tag path}``: one bulk value of the stored file."""
    uids = path_uids(request, "study", "series", "instance")
    single = any(m.type == OCTET for m in accepted(request)[:1])
    stored = await run_in_threadpool(find_instance, await read_engine(request), uids)
    location = bulk_location(stored, str(request.path_params["path"]))
    data = await run_in_threadpool(_bulk_value, location)
    if not single:
        return multipart([(OCTET, data)], OCTET)
    if isinstance(data, bytes):
        return Response(data, media_type=OCTET)
    headers = {"Content-Length": str(data.length)}
    return StreamingResponse(data.chunks(), media_type=OCTET, headers=headers)

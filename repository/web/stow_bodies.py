"""STOW-RS bodies other than ``multipart/related; type="application/dicom"`` (PS3.18 10.5).

- A single ``application/dicom`` body (one instance, as the Google Cloud and Azure DICOM services
  accept): streamed to one temporary file.
- ``multipart/related; type="application/dicom+json"``: the first part is a DICOM JSON array of
  instances; the later parts carry the bulk data their ``BulkDataURI``s name, matched by each
  part's ``Content-Location``. Every instance becomes a Part 10 file (file meta information
  built here, the transfer syntax from its pixel data part), which STOW-RS then stores exactly as
  it stores a received Part 10 part.

Bulk pixel data may be native (``application/octet-stream``, the transfer syntax explicit VR
little endian unless a ``transfer-syntax`` parameter names another native one) or compressed
(``image/jpeg``, ``image/jp2``, ... or any type with a ``transfer-syntax`` parameter naming an
encapsulated syntax): then each part is one frame, and several parts with the same
``Content-Location`` are the frames in order.
"""

from __future__ import annotations

import secrets
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import orjson
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import UID, ExplicitVRLittleEndian
from starlette.requests import Request

from .errors import bad_request, brief

PIXEL_DATA = "7FE00010"
COMPRESSED_MEDIA = {
    "image/jpeg": "1.2.840.10008.1.2.4.50",
    "image/jls": "1.2.840.10008.1.2.4.80",
    "image/jp2": "1.2.840.10008.1.2.4.90",
    "image/jpx": "1.2.840.10008.1.2.4.92",
    "image/x-dicom-rle": "1.2.840.10008.1.2.5",
    "image/dicom-rle": "1.2.840.10008.1.2.5",
}
"""Default transfer syntax of each compressed bulk data media type (PS3.18 Table 8.7.3-2)."""


class ReceivedPart(Protocol):
    """A received part: the temporary file holding its body, and its (lower-case) headers."""

    path: Path
    headers: dict[str, str]


@dataclass
class Refusal:
    """An instance of the DICOM JSON part that could not be made into a Part 10 file."""

    sop_class: str | None
    sop: str | None
    message: str


async def receive_single(request: Request, folder: Path) -> Path:
    """Stream a single-part ``application/dicom`` body into a temporary file in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{secrets.token_hex(12)}.part"
    with path.open("wb") as handle:
        try:
            async for chunk in request.stream():
                handle.write(chunk)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
    if path.stat().st_size == 0:
        path.unlink(missing_ok=True)
        raise bad_request("the application/dicom body is empty")
    return path


def _media(header: str) -> tuple[str, dict[str, str]]:
    kind, *params = header.split(";")
    values = {}
    for param in params:
        name, _, value = param.strip().partition("=")
        values[name.strip().lower()] = value.strip().strip('"')
    return kind.strip().lower(), values


def _syntax(parts: Sequence[ReceivedPart]) -> UID:
    """The transfer syntax bulk pixel data parts are in (explicit VR little endian by default)."""
    kind, params = _media(parts[0].headers.get("content-type", "application/octet-stream"))
    named = params.get("transfer-syntax") or COMPRESSED_MEDIA.get(kind)
    if named is None and kind != "application/octet-stream":
        raise ValueError(f"bulk pixel data of media type {kind!r} names no transfer syntax")
    syntax = UID(named or ExplicitVRLittleEndian)
    if not syntax.is_transfer_syntax:
        raise ValueError(f"{syntax} is not a transfer syntax")
    return syntax


class _Bulk:
    """The bulk data parts by Content-Location, read on demand; the pixel data syntax seen."""

    def __init__(self, parts: Sequence[ReceivedPart]) -> None:
        self.parts: dict[str, list[ReceivedPart]] = {}
        for part in parts:
            location = part.headers.get("content-location", "").strip()
            self.parts.setdefault(location, []).append(part)
        self.pixel_syntax: UID | None = None

    def value(self, tag: str, vr: str, uri: str) -> bytes:
        found = self.parts.get(uri.strip())
        if not found:
            raise ValueError(f"BulkDataURI {uri!r} of ({tag[:4]},{tag[4:]}) names no part")
        bodies = [part.path.read_bytes() for part in found]
        if tag.upper() != PIXEL_DATA:
            return b"".join(bodies)
        syntax = _syntax(found)
        self.pixel_syntax = syntax
        return encapsulate(bodies) if syntax.is_encapsulated else b"".join(bodies)


def _check_native_length(ds: Dataset) -> None:
    """Refuse native pixel data shorter than its image attributes say."""
    try:
        bits = int(ds.Rows) * int(ds.Columns) * int(ds.get("SamplesPerPixel", 1) or 1)
        bits *= int(ds.BitsAllocated) * int(ds.get("NumberOfFrames", 1) or 1)
    except (AttributeError, TypeError, ValueError) as error:
        raise ValueError(f"pixel data without usable image attributes: {error}") from None
    needed, held = (bits + 7) // 8, len(ds.PixelData or b"")
    if held < needed:
        raise ValueError(f"PixelData holds {held} bytes; its image attributes need {needed}")


def _file_meta(ds: Dataset, syntax: UID) -> FileMetaDataset:
    meta = FileMetaDataset()
    for element in [e for e in ds if e.tag.group == 0x0002]:
        meta.add(element)
        del ds[element.tag]
    meta.TransferSyntaxUID = syntax
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return meta


def _declared_syntax(item: dict[str, Any]) -> UID | None:
    value = item.get("00020010", {}).get("Value") if isinstance(item, dict) else None
    syntax = UID(str(value[0])) if value else None
    return syntax if syntax is not None and not syntax.is_encapsulated else None


def _instance(item: Any, bulk: _Bulk, path: Path) -> None:
    """Write the DICOM JSON object ``item`` and its bulk data as a Part 10 file at ``path``."""
    if not isinstance(item, dict):
        raise ValueError("an element of the DICOM JSON array is not an object")
    bulk.pixel_syntax = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = Dataset.from_json(item, bulk.value)
    for keyword in ("SOPClassUID", "SOPInstanceUID"):
        if not ds.get(keyword):
            raise ValueError(f"the instance has no {keyword}")
    syntax = bulk.pixel_syntax or _declared_syntax(item) or UID(ExplicitVRLittleEndian)
    if syntax.is_encapsulated and "PixelData" in ds:
        ds["PixelData"].VR = "OB"
    elif "PixelData" in ds:
        _check_native_length(ds)
    ds.file_meta = _file_meta(ds, syntax)
    ds.save_as(path, enforce_file_format=True)


def _uid(item: Any, tag: str) -> str | None:
    try:
        return str(item[tag]["Value"][0])
    except (KeyError, IndexError, TypeError):
        return None


def _instances(first: ReceivedPart) -> list[Any]:
    kind, _ = _media(first.headers.get("content-type", ""))
    if kind not in ("application/dicom+json", "application/json"):
        raise bad_request(
            "the first part of a DICOM JSON STOW-RS body must be the application/dicom+json "
            f"metadata, not {kind or 'a part without Content-Type'!r}"
        )
    try:
        items = orjson.loads(first.path.read_bytes())
    except orjson.JSONDecodeError as error:
        raise bad_request(f"the application/dicom+json part is not JSON: {error}") from None
    items = [items] if isinstance(items, dict) else items
    if not isinstance(items, list) or not items:
        raise bad_request("the application/dicom+json part must be a non-empty array of objects")
    return items


def to_part10(parts: Sequence[ReceivedPart], folder: Path) -> list[Path | Refusal]:
    """The Part 10 file written (in ``folder``) for each instance of the DICOM JSON part, or a
    refusal for those that cannot be written, in order; the received parts' files are removed."""
    try:
        items = _instances(parts[0])
        bulk = _Bulk(parts[1:])
        out: list[Path | Refusal] = []
        for item in items:
            path = folder / f"{secrets.token_hex(12)}.dcm.part"
            try:
                _instance(item, bulk, path)
                out.append(path)
            except Exception as error:
                path.unlink(missing_ok=True)
                out.append(Refusal(_uid(item, "00080016"), _uid(item, "00080018"), brief(error)))
        return out
    finally:
        for part in parts:
            part.path.unlink(missing_ok=True)

"""Stored form -> DICOM JSON and pydicom Datasets (the way out; tolerant of odd values)."""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from ..errors import InvalidValueError
from .dictionary import dictionary_VR, tag_for_keyword
from .values import OHIF_EXTRA_KEYS, is_tag_key

if TYPE_CHECKING:
    from pydicom.dataelem import DataElement, RawDataElement
    from pydicom.dataset import Dataset


def to_dicom_json(md: Mapping[str, Any]) -> dict[str, Any]:
    """The stored form back as DICOM JSON (the inverse of :func:`naturalize_dicom_json`)."""
    out: dict[str, Any] = {}
    for key, value in md.items():
        if key in OHIF_EXTRA_KEYS:
            continue
        tag_key, vr = _json_key(key)
        if vr is None:
            elem = dict(value)
            if elem.get("vr") == "SQ":
                elem["Value"] = [to_dicom_json(item) for item in elem.get("Value", [])]
            out[tag_key] = elem
            continue
        out[tag_key] = _keyword_element(vr, value)
    return out


@lru_cache(maxsize=8192)
def _json_key(key: str) -> tuple[str, str | None]:
    """A stored key's DICOM JSON tag, and its VR for a keyword (None for a tag key).

    Cached: WADO-RS metadata converts thousands of instances with the same keys.
    """
    if is_tag_key(key):
        return key.upper(), None
    tag = tag_for_keyword(key)
    if tag is None:
        raise InvalidValueError(f"{key!r} is not a DICOM keyword or tag")
    return f"{tag:08X}", dictionary_VR(tag).split(" or ")[0]


def _keyword_element(vr: str, value: Any) -> dict[str, Any]:
    elem: dict[str, Any] = {"vr": vr}
    if isinstance(value, Mapping) and ("BulkDataURI" in value or "InlineBinary" in value):
        elem.update(value)
    elif vr == "SQ":
        elem["Value"] = [to_dicom_json(item) for item in value or []]
    elif value is not None:
        elem["Value"] = value if isinstance(value, list) else [value]
    return elem


def to_dataset(md: Mapping[str, Any]) -> Dataset:
    """A pydicom Dataset from the stored form; bulk data references become empty values.

    Values that were stored verbatim because they were malformed (an IS of ``"1A"``) are set as
    raw strings, as pydicom itself would read them from a file.
    """
    from pydicom.dataset import Dataset, FileMetaDataset  # imported when first needed

    ds, meta = Dataset(), FileMetaDataset()
    for key, elem in to_dicom_json(md).items():
        target = meta if key.startswith("0002") else ds
        target[int(key, 16)] = _element_from_json(key, elem)
    if len(meta):
        ds.file_meta = meta
    return ds


def _element_from_json(key: str, elem: Mapping[str, Any]) -> DataElement | RawDataElement:
    from pydicom.dataelem import DataElement, RawDataElement
    from pydicom.dataset import Dataset
    from pydicom.tag import Tag

    vr = elem["vr"]
    value_key = next((k for k in ("Value", "BulkDataURI", "InlineBinary") if k in elem), "Value")
    value = elem.get(value_key)
    if value_key == "BulkDataURI":
        return DataElement(int(key, 16), vr, b"")
    try:
        return DataElement.from_json(Dataset, key, vr, value, value_key)
    except (TypeError, ValueError):
        text = "\\".join("" if v is None else str(v) for v in value or [])
        raw = text.encode("utf-8")
        return RawDataElement(Tag(int(key, 16)), vr, len(raw), raw, 0, False, True)

"""pydicom Dataset -> naturalized metadata (file meta included), without reading bulk data."""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InvalidValueError
from ..pydicom_types import is_instance
from ..validation import scalar
from .dictionary import dictionary_VR
from .values import (
    BINARY_VRS,
    BULK_DATA_THRESHOLD,
    BulkDataURI,
    Metadata,
    RawElement,
    element_key,
    element_name,
    is_raw_element,
    natural_value,
    tagged_value,
)

if TYPE_CHECKING:  # a Dataset in hand means pydicom is loaded: this module does not import it
    from pydicom.dataelem import DataElement, RawDataElement
    from pydicom.dataset import Dataset


def naturalize_dataset(ds: Dataset, bulk_data_uri: BulkDataURI | None = None) -> Metadata:
    """Return the stored form of a pydicom Dataset, file meta included.

    ``bulk_data_uri`` maps a large binary element to the URI stored in its place; without one
    (a Dataset built in memory: its values have no address to refer to) binary values are kept
    inline, never replaced by a reference that leads nowhere. Elements pydicom cannot decode
    are kept as tag-keyed ``UN``.
    """
    return with_file_meta(ds, bulk_data_uri, _naturalize_into)


Naturalizer = Callable[[Metadata, "Dataset", BulkDataURI | None], None]
"""Writes the stored form of one dataset's elements into a dict."""


def with_file_meta(ds: Dataset, bulk: BulkDataURI | None, into: Naturalizer) -> Metadata:
    """The stored form of ``ds``'s file meta group (if any), then of ``ds``, by ``into``."""
    out: Metadata = {}
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        into(out, meta, bulk)
    into(out, ds, bulk)
    return out


def _naturalize_into(out: Metadata, ds: Dataset, bulk: BulkDataURI | None) -> None:
    for tag in ds.keys():  # noqa: SIM118 (iterating a Dataset yields elements, and reads them)
        raw = ds.get_item(tag, keep_deferred=True)  # do not read deferred (large) values
        if raw is not None:
            naturalize_element(out, ds, tag, raw, bulk)


def naturalize_element(
    out: Metadata,
    ds: Dataset,
    tag: int,
    raw: DataElement | RawDataElement,
    bulk: BulkDataURI | None,
) -> None:
    """Store element ``tag`` of ``ds`` (``raw`` as read, possibly deferred) into ``out``."""
    vr = raw.VR or dictionary_vr(tag)
    if bulk is not None and vr in BINARY_VRS and _is_bulk(raw):
        key, kw = element_key(tag, vr)
        ref = {"BulkDataURI": bulk(raw)}
        out[key] = ref if kw else {"vr": vr, **ref}
        return
    try:
        elem = ds[tag]
        key, kw = element_key(elem.tag, elem.VR)
        values = _element_values(elem, bulk)
    except InvalidValueError as error:  # decoded, but not storable: say which element
        raise InvalidValueError(f"{element_name(tag)}: {error}") from None
    except Exception:  # pydicom could not decode it: keep the raw bytes, losing nothing
        key, kw = f"{int(tag):08X}", None
        values = _binary(raw.value if isinstance(raw.value, bytes) else b"")
        vr = "UN"
    else:
        vr = elem.VR
    out[key] = natural_value(vr, values) if kw else tagged_value(vr, values)


def dictionary_vr(tag: int) -> str:
    """VR of an implicit-VR element for the bulk data test: the dictionary's, binary if any of
    its choices is binary; "UN" for tags it does not hold (private ones included)."""
    try:
        choices = dictionary_VR(tag).split(" or ")
    except KeyError:
        return "UN"
    return next((vr for vr in choices if vr in BINARY_VRS), choices[0])


def _is_bulk(raw: DataElement | RawDataElement) -> bool:
    if is_raw_element(raw):  # an empty value (pydicom defers it too) is not bulk
        return raw.length != 0 and (raw.value is None or raw.length > BULK_DATA_THRESHOLD)
    value = raw.value
    return (value is None and raw.is_undefined_length) or (
        isinstance(value, bytes | bytearray) and len(value) > BULK_DATA_THRESHOLD
    )


def _element_values(elem: DataElement, bulk: BulkDataURI | None) -> Any:
    """Values of one element as a list, or a binary dict for binary VRs."""
    value, vr = elem.value, elem.VR
    if vr == "SQ":
        return [naturalize_dataset(item, bulk) for item in value or ()]
    if vr in BINARY_VRS or isinstance(value, bytes | bytearray):
        if isinstance(value, bytes | bytearray):
            if bulk is not None and len(value) > BULK_DATA_THRESHOLD:
                return {"BulkDataURI": bulk(elem)}
            return _binary(bytes(value))
        if value is None:
            return []
    if value is None or value == "":
        return []
    several = isinstance(value, list | tuple) or is_instance(
        value, "pydicom.multival", "MultiValue"
    )
    items = list(value) if several else [value]
    key = f"{int(elem.tag):08X}"
    return [scalar(vr, v, key) for v in items]


def _binary(value: bytes) -> dict[str, Any]:
    return {"InlineBinary": base64.b64encode(value).decode("ascii")} if value else {}


def file_bulk_uri(path: str | Path) -> BulkDataURI:
    """BulkDataURIs pointing into a file: ``file:///...?offset=N&length=M`` where known."""
    uri = Path(path).resolve().as_uri()

    def make(elem: DataElement | RawDataElement | RawElement) -> str:
        if is_raw_element(elem) and elem.length != 0xFFFFFFFF:
            return f"{uri}?offset={elem.value_tell}&length={elem.length}"
        return f"{uri}?tag={int(elem.tag):08X}"

    return make

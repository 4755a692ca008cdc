"""The stored form of a pydicom Dataset, decoding common raw elements straight from their bytes.

:func:`naturalize_dataset_fast` returns exactly what :func:`.dataset.naturalize_dataset` returns
for the same Dataset, only faster: pydicom turns each raw element into a ``DataElement``
(value classes, validation, MultiValue) that the stored form then takes apart again; here the
common cases are decoded from ``RawDataElement`` bytes by :mod:`.decode`, and sequences, which
pydicom splits into item Datasets, have their items' elements decoded in turn.

Anything :mod:`.decode` does not handle (and implicit-VR private tags, deferred or bulk values,
undefined lengths) goes through :func:`.dataset.naturalize_element`, the pydicom path, so the
result is the same by construction; ``tests/test_normalize_fast.py`` checks it file by file.
"""

from __future__ import annotations

from typing import Any

from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag

from .dataset import naturalize_element, with_file_meta
from .decode import _NotHandled, codec_of, decode_value, implicit_vr
from .values import BulkDataURI, Metadata, element_key, natural_value, tagged_value


def naturalize_dataset_fast(ds: Dataset, bulk_data_uri: BulkDataURI | None = None) -> Metadata:
    """The stored form of ``ds`` (file meta included), equal to ``naturalize_dataset(ds)``."""
    return with_file_meta(ds, bulk_data_uri, _naturalize_into)


def _naturalize_into(out: Metadata, ds: Dataset, bulk: BulkDataURI | None) -> None:
    codec: str | None = None  # looked up on the first text element that needs it
    for tag in ds.keys():  # noqa: SIM118 (keys() leaves the raw elements raw)
        raw = ds.get_item(tag, keep_deferred=True)
        if raw is None:
            continue
        try:
            if raw.VR == "SQ" or (raw.VR is None and implicit_vr(tag) == "SQ"):
                _sequence_into(out, ds, tag, bulk)
                continue
            if isinstance(raw, RawDataElement):
                if codec is None:
                    codec = codec_of(ds.original_character_set or ds._character_set)
                key, value = _decode(raw, codec)
                out[key] = value
                continue
        except Exception:  # anything unusual is for pydicom to decode
            pass
        naturalize_element(out, ds, tag, raw, bulk)


def _sequence_into(out: Metadata, ds: Dataset, tag: int, bulk: BulkDataURI | None) -> None:
    """pydicom splits a sequence into item Datasets; their elements are decoded here."""
    elem = ds[tag]
    if elem.VR != "SQ":
        raise _NotHandled
    key, kw = element_key(BaseTag(tag), "SQ")
    items = [naturalize_dataset_fast(item, bulk) for item in elem.value or ()]
    out[key] = natural_value("SQ", items) if kw else tagged_value("SQ", items)


def _decode(raw: RawDataElement, codec: str) -> tuple[str, Any]:
    """Key and stored value of one raw element; :class:`_NotHandled` when pydicom must do it."""
    vr = raw.VR or implicit_vr(raw.tag)
    data = raw.value
    if data is None and raw.length == 0:
        data = b""  # empty, not deferred
    if vr is None or data is None or len(data) != raw.length:
        raise _NotHandled  # deferred, undefined length, or cut short by the end of the file
    return decode_value(raw.tag, vr, data, raw.is_little_endian, codec)

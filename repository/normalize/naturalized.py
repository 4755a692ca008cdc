"""Checks of naturalized input (keyword or tag keys), returning the cleaned stored form."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.tag import Tag

from ..errors import InvalidValueError
from ..validation import clean_text
from .dicom_json import is_dicom_json, naturalize_dicom_json
from .values import OHIF_EXTRA_KEYS, Metadata, element_key, is_tag_key, tagged_value


def check_naturalized(obj: Mapping[str, Any], where: str = "") -> Metadata:
    """Validate a naturalized dict (keyword or tag keys) and return a cleaned copy."""
    out: Metadata = {}
    for key, value in obj.items():
        if not isinstance(key, str):
            raise InvalidValueError(f"{where}key {key!r} is not a string")
        if key in OHIF_EXTRA_KEYS and not where:
            out[key] = value
            continue
        if is_tag_key(key):
            name, kw = element_key(Tag(int(key, 16)))
            if kw is None:
                if not isinstance(value, Mapping) or "vr" not in value:
                    raise InvalidValueError(f"{where}{key}: a tag-keyed value needs a 'vr'")
                out[name] = _check_tagged(key, name, value, where)
                continue
            key = name  # a public tag written as hex: store under its keyword
        elif not tag_for_keyword(key):
            raise InvalidValueError(f"{where}{key!r} is not a DICOM keyword or tag")
        out[key] = _check_value(key, value, where)
    return out


def _check_tagged(key: str, name: str, value: Mapping[str, Any], where: str) -> Any:
    """A private or unknown element in DICOM JSON form. Its sequence items may be naturalized
    (the form the store returns them in) or DICOM JSON."""
    raw = value.get("Value")
    if value["vr"] != "SQ" or not raw or not isinstance(raw, list):
        return naturalize_dicom_json({key: value})[name]
    items: list[Metadata] = []
    for index, item in enumerate(raw):
        if not isinstance(item, Mapping):
            raise InvalidValueError(f"{where}{key}[{index}]: a sequence item must be an object")
        inner = f"{where}{key}[{index}]."
        items.append(naturalize_dicom_json(item) if is_dicom_json(item)
                     else check_naturalized(item, inner))  # fmt: skip
    return tagged_value("SQ", items)


def _check_value(key: str, value: Any, where: str) -> Any:
    if isinstance(value, str):
        try:
            return clean_text(value)
        except InvalidValueError as error:
            raise InvalidValueError(f"{where}{key}: {error}") from None
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, Mapping):
        return {str(k): _check_value(key, v, where) for k, v in value.items()}
    if isinstance(value, list | tuple):
        if dictionary_VR(key) == "SQ":
            return [
                check_naturalized(item, f"{where}{key}[{i}].")
                for i, item in enumerate(value)
                if isinstance(item, Mapping)
            ]
        return [_check_value(key, v, where) for v in value]
    raise InvalidValueError(f"{where}{key}: value of type {type(value).__name__} is not JSON")

"""Naturalized input (keyword or tag keys, as OHIF and dcmjs make it) -> the stored form.

What dcmjs adds to an instance (``DicomMetaDictionary.naturalizeDataset`` and OHIF's local file
loader) is understood here: ``_vrMap`` gives the VRs of the elements it names and is never stored;
``_meta`` (the file meta group in dcmjs's "namified" DICOM JSON) is stored as the file meta
elements a file ingest stores; ``url`` (OHIF's imageId of a local file) becomes the imageId when
none is given; ``AvailableTransferSyntaxUID`` next to ``_meta`` is OHIF's copy of the file meta's
TransferSyntaxUID and is not stored. A private element given as a bare value (dcmjs records no
VR for private elements) takes the VR pydicom's private dictionary gives it through its block's
private creator, as pydicom does, else the VR its value's type tells. Values are converted by
:mod:`.coerce`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from ..errors import InvalidValueError
from .coerce import (
    coerce_values,
    dcmjs_name,
    fits,
    infer_vr,
    keyword_vr,
    private_vr,
    tag_vr,
)
from .dicom_json import is_dicom_json, naturalize_dicom_json
from .dictionary import tag_for_keyword
from .values import (
    MAX_SEQUENCE_DEPTH,
    OHIF_EXTRA_KEYS,
    Metadata,
    element_key,
    is_tag_key,
    natural_value,
    nested_too_deep,
    tagged_value,
)

VR_MAP_KEY = "_vrMap"
META_KEY = "_meta"


def check_naturalized(obj: Mapping[str, Any], where: str = "") -> Metadata:
    """Validate a naturalized dict (keyword or tag keys) and return it in stored form."""
    vr_map = _vr_map(obj.get(VR_MAP_KEY), where)
    creators = _private_creators(obj)
    out: Metadata = {}
    for key, value in obj.items():
        if not isinstance(key, str):
            raise InvalidValueError(f"{where}key {key!r} is not a string")
        if key in (VR_MAP_KEY, META_KEY):
            continue
        if key in OHIF_EXTRA_KEYS and not where:
            out[key] = value
            continue
        name, stored = _element(key, value, vr_map, where, creators)
        out[name] = stored
    if not where:
        _ohif_keys(obj, out)
    return out


def _ohif_keys(obj: Mapping[str, Any], out: Metadata) -> None:
    """The file meta group from ``_meta``; ``url`` and ``AvailableTransferSyntaxUID`` as OHIF
    means them (see the module docstring)."""
    meta = obj.get(META_KEY)
    if meta is not None:
        for name, stored in _file_meta(meta).items():
            out.setdefault(name, stored)
        out.pop("AvailableTransferSyntaxUID", None)
    url = out.pop("url", None)
    if url is not None and out.get("imageId") is None:
        out["imageId"] = url


def _vr_map(value: Any, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidValueError(f"{where}{VR_MAP_KEY} must be an object of VRs")
    return value


def _file_meta(meta: Any) -> Metadata:
    """dcmjs's namified file meta (``{keyword: {"vr", "Value"}}``) in stored form."""
    if not isinstance(meta, Mapping):
        raise InvalidValueError(f"{META_KEY} must be an object")
    out: Metadata = {}
    for key, elem in meta.items():
        if not isinstance(elem, Mapping) or not isinstance(elem.get("vr"), str):
            raise InvalidValueError(f"{META_KEY}.{key}: expected an object with a 'vr'")
        value = next((elem[k] for k in ("InlineBinary", "BulkDataURI") if k in elem), None)
        if value is not None:
            value = {k: elem[k] for k in ("InlineBinary", "BulkDataURI") if k in elem}
        else:
            value = elem.get("Value")
        name, stored = _element(key, value, {key: elem["vr"]}, f"{META_KEY}.")
        out[name] = stored
    return out


def _element(
    key: str,
    value: Any,
    vr_map: Mapping[str, Any],
    where: str,
    creators: Mapping[tuple[int, int], str] | None = None,
) -> tuple[str, Any]:
    """The stored key and value of one naturalized element."""
    if is_tag_key(key):
        tag = int(key, 16)
        name, kw = element_key(tag)
        if isinstance(value, Mapping) and "vr" in value:  # DICOM JSON form (no natural value is)
            return _check_tagged(key, value, where)
        if kw is None:  # private or unknown: a bare value
            given = vr_map.get(key) or vr_map.get(name) or tag_vr(tag)
            if isinstance(given, str) and given:
                return name, _stored(given, value, name, where, tagged=True)
            return name, _bare_private(tag, value, name, where, creators or {})
        vr_map = {name: vr_map[key]} if key in vr_map else vr_map
        key = name  # a public tag written as hex: stored under its keyword
    elif not tag_for_keyword(key):
        known = dcmjs_name(key)
        if known is not None:
            return _element(known, value, {known: vr_map[key]} if key in vr_map else {}, where)
        raise InvalidValueError(f"{where}{key!r} is not a DICOM keyword or tag")
    vr = keyword_vr(key, vr_map, value)
    number = tag_for_keyword(key)
    assert number is not None
    stored_key, kw = element_key(number, vr)  # a VR not of the keyword's kind: under its tag
    return stored_key, _stored(vr, value, key, where, tagged=kw is None)


def _bare_private(
    tag: int, value: Any, name: str, where: str, creators: Mapping[tuple[int, int], str]
) -> Any:
    """A private element given as a bare value, no VR (dcmjs records none): the VR pydicom's
    private dictionary gives it through its block's private creator, if the value fits that
    VR, else the VR its value's type tells."""
    known = private_vr(tag, creators.get((tag >> 16, (tag & 0xFFFF) >> 8)))
    if known is not None and fits(known, value):
        with contextlib.suppress(InvalidValueError):
            return _stored(known, value, name, where, tagged=True)
    return _stored(_infer(value, where, name), value, name, where, tagged=True)


def _private_creators(obj: Mapping[str, Any]) -> dict[tuple[int, int], str]:
    """(group, block) -> private creator, from the creator elements (gggg,00xx) of ``obj``."""
    creators: dict[tuple[int, int], str] = {}
    for key, value in obj.items():
        if not (isinstance(key, str) and is_tag_key(key)):
            continue
        group, element = int(key[:4], 16), int(key[4:], 16)
        if group % 2 == 0 or not 0x10 <= element <= 0xFF:
            continue
        if isinstance(value, Mapping):
            value = value.get("Value")
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
        if isinstance(value, str):
            creators[(group, element)] = value.strip()
    return creators


def _check_tagged(key: str, value: Mapping[str, Any], where: str) -> tuple[str, Any]:
    """The stored key and value of an element given by its tag in DICOM JSON form. Its
    sequence items may be naturalized (the form the store returns them in) or DICOM JSON."""
    raw = value.get("Value")
    if value["vr"] != "SQ" or not raw or not isinstance(raw, list):
        ((name, stored),) = naturalize_dicom_json({key: value}).items()
        return name, stored
    items: list[Metadata] = []
    for index, item in enumerate(raw):
        if not isinstance(item, Mapping):
            raise InvalidValueError(f"{where}{key}[{index}]: a sequence item must be an object")
        inner = f"{where}{key}[{index}]."
        items.append(naturalize_dicom_json(item) if is_dicom_json(item)
                     else check_naturalized(item, inner))  # fmt: skip
    name, kw = element_key(int(key, 16), "SQ")
    return name, natural_value("SQ", items) if kw else tagged_value("SQ", items)


def _infer(value: Any, where: str, name: str) -> str:
    try:
        return infer_vr(value)
    except InvalidValueError:
        raise InvalidValueError(f"{where}{name}: cannot tell the VR of {value!r}") from None


def _stored(vr: str, value: Any, key: str, where: str, *, tagged: bool) -> Any:
    try:
        values = coerce_values(vr, value, key)
    except InvalidValueError as error:
        raise InvalidValueError(f"{where}{error}") from None
    if vr == "SQ":
        if where.count("[") >= MAX_SEQUENCE_DEPTH:
            raise nested_too_deep(f"{where}{key}")
        values = [check_naturalized(item, f"{where}{key}[{i}].") for i, item in enumerate(values)]
    return tagged_value(vr, values) if tagged else natural_value(vr, values)

"""DICOM JSON (PS3.18 F.2) -> naturalized metadata."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import InvalidValueError
from ..validation import scalar
from .coerce import inline_binary
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


def is_dicom_json(obj: Mapping[str, Any]) -> bool:
    """True if ``obj`` looks like PS3.18 F.2 DICOM JSON (tag keys with ``vr`` objects)."""
    keys = [k for k in obj if k not in OHIF_EXTRA_KEYS]
    return bool(keys) and all(
        is_tag_key(k) and isinstance(obj[k], Mapping) and "vr" in obj[k] for k in keys
    )


def naturalize_dicom_json(obj: Mapping[str, Any], depth: int = 0) -> Metadata:
    """Return the stored form of a DICOM JSON object (OHIF extra keys are passed through);
    ``depth``: the sequences it lies in."""
    out: Metadata = {}
    for key, elem in obj.items():
        if key in OHIF_EXTRA_KEYS:
            out[key] = elem
            continue
        if not is_tag_key(key) or not isinstance(elem, Mapping) or "vr" not in elem:
            raise InvalidValueError(f"DICOM JSON key {key!r} is not an 8-hex-digit tag with a vr")
        vr = str(elem["vr"])
        values = _values(key, vr, elem, depth)
        name, kw = element_key(int(key, 16), vr)
        out[name] = natural_value(vr, values) if kw else tagged_value(vr, values)
    return out


def _values(key: str, vr: str, elem: Mapping[str, Any], depth: int) -> Any:
    if "BulkDataURI" in elem:
        return {"BulkDataURI": elem["BulkDataURI"]}
    if "InlineBinary" in elem:
        return inline_binary(elem["InlineBinary"], key)
    raw = elem.get("Value") or []
    if not isinstance(raw, list):
        raise InvalidValueError(f"DICOM JSON element {key}: Value must be a list")
    if vr == "SQ":
        if depth >= MAX_SEQUENCE_DEPTH:
            raise nested_too_deep(f"DICOM JSON element {key}")
        return [_item(key, index, item, depth + 1) for index, item in enumerate(raw)]
    for v in raw:
        if v is not None and not isinstance(v, str | int | float | Mapping):
            raise InvalidValueError(
                f"DICOM JSON element {key}: {type(v).__name__} value {v!r:.40} is not JSON"
            )
    return [scalar(vr, v, key) for v in raw]


def _item(key: str, index: int, item: Any, depth: int) -> Metadata:
    if item is None:
        return {}
    if not isinstance(item, Mapping):
        raise InvalidValueError(
            f"DICOM JSON element {key}[{index}]: a sequence item must be an object, "
            f"got {item!r:.40}"
        )
    return naturalize_dicom_json(item, depth)

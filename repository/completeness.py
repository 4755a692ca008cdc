"""Truncated files: pydicom reads a value cut short by the end of the file without complaint.

A file cut inside a value would otherwise be stored with that value shortened (a UID ``1.2.8``
instead of ``1.2.840...``), after which the complete file is refused as a conflict. Every raw
element read must hold the number of bytes its header declares, every deferred (large) value
must lie inside the file, and nothing may be left after the last element but a partial header.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from .normalize.dictionary import DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN
from .normalize.values import MAX_SEQUENCE_DEPTH, nested_too_deep

if TYPE_CHECKING:  # a Dataset in hand means pydicom is loaded: this module does not import it
    from pydicom.dataelem import RawDataElement
    from pydicom.dataset import Dataset

UNDEFINED_LENGTH = 0xFFFFFFFF
UNBOUNDED = 2**63


def truncation(ds: Dataset, file_size: int) -> str | None:
    """Why ``ds`` (read from a file of ``file_size`` bytes) is truncated, or None if it is whole.

    In a deflated file the positions are those of the inflated stream, so only the lengths of
    the values read are checked there.
    """
    from pydicom.dataelem import RawDataElement

    meta = getattr(ds, "file_meta", None)
    if meta is not None and meta.get("TransferSyntaxUID") == DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN:
        file_size = UNBOUNDED
    for elem in _raw_elements(ds):
        length, value = elem.length, elem.value
        if length == UNDEFINED_LENGTH:
            continue
        tag = f"({elem.tag.group:04X},{elem.tag.elem:04X})"
        if value is None and elem.value_tell + length > file_size:
            return f"the value of {tag} ends at byte {elem.value_tell + length}, after the end"
        if value is not None and len(value) < length:
            return f"the value of {tag} has {len(value)} of its {length} bytes"
    last = next(reversed(list(ds._dict.values())), None)
    if isinstance(last, RawDataElement) and last.length != UNDEFINED_LENGTH:
        end = last.value_tell + last.length
        # a partial element header, at which pydicom stops reading
        if file_size != UNBOUNDED and 0 < file_size - end < 12:
            return f"{file_size - end} stray bytes after the last element (a cut header)"
    return None


def _raw_elements(ds: Dataset) -> Iterator[RawDataElement]:
    from pydicom.dataelem import DataElement, RawDataElement

    for elem in ds._dict.values():
        if isinstance(elem, RawDataElement):
            yield elem
        elif isinstance(elem, DataElement) and elem.VR == "SQ":
            for item in elem.value or ():
                yield from _raw_elements(item)


def check_depth(metadata: Mapping[str, Any], source: str) -> None:
    """Raise InvalidValueError if sequences in ``metadata`` nest deeper than the limit."""
    depth = _depth(metadata, 0)
    if depth > MAX_SEQUENCE_DEPTH:
        raise nested_too_deep(source)


def _depth(md: Mapping[str, Any], level: int) -> int:
    deepest = level
    if level > MAX_SEQUENCE_DEPTH:
        return level
    for value in md.values():
        if isinstance(value, list) and value and isinstance(value[0], Mapping):
            for item in value:
                if isinstance(item, Mapping):
                    deepest = max(deepest, _depth(item, level + 1))
    return deepest

"""pydicom's data dictionaries, looked up without importing the ``pydicom`` package.

Importing ``pydicom`` imports numpy and its pixel machinery (a third of ``dicom-repo``'s start);
reading a file from its bytes (:mod:`.reader`) needs only the dictionaries. pydicom stays their
one source: on the first lookup its ``_dicom_dict.py`` (on the first private lookup, its
``_private_dict.py``) is loaded from pydicom's installed folder as a module of its own, or
taken from pydicom if pydicom is already loaded. (The copy is not registered under pydicom's
name: pydicom, imported later, would then lack its ``pydicom._dicom_dict`` attribute.)

The functions here have the semantics of their namesakes in ``pydicom.datadict`` for tags given
as ints (``tests/test_dictionary.py`` compares them over every tag of both dictionaries), and
the constants are those of pydicom's reader (compared with pydicom's own there too).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from functools import cache
from types import ModuleType
from typing import TYPE_CHECKING, Any

AMBIGUOUS_US_SS_TAGS = frozenset({
    0x00189810, 0x00221452, 0x00280104, 0x00280105, 0x00280106, 0x00280107, 0x00280108,
    0x00280109, 0x00280110, 0x00280111, 0x00280120, 0x00280121, 0x00281101, 0x00281102,
    0x00281103, 0x00283002, 0x00409211, 0x00409216, 0x00603004, 0x00603006,
})  # fmt: skip
"""``pydicom.filewriter._AMBIGUOUS_US_SS_TAGS``: US or SS by the PixelRepresentation."""
LUT_DESCRIPTOR_TAGS = frozenset({0x00281101, 0x00281102, 0x00281103, 0x00283002})
"""``pydicom.tag._LUT_DESCRIPTOR_TAGS``: pydicom rewrites a negative first value."""
VRS = frozenset({
    "AE", "AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO", "LT", "OB", "OD", "OF",
    "OL", "OV", "OW", "PN", "SH", "SL", "SQ", "SS", "ST", "SV", "TM", "UC", "UI", "UL", "UN",
    "UR", "US", "UT", "UV",
})  # fmt: skip
"""The two-letter members of ``pydicom.valuerep.VR``."""
EXPLICIT_VR_LENGTH_32 = frozenset(
    {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"}
)
"""``pydicom.valuerep.EXPLICIT_VR_LENGTH_32``: VRs with a 4-byte length in explicit VR."""
IMPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2"
EXPLICIT_VR_BIG_ENDIAN = "1.2.840.10008.1.2.2"
DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1.99"
"""The transfer syntax UIDs of ``pydicom.uid`` the reader tells apart."""

Entry = tuple[str, str, str, str, str]
"""A dictionary entry: (VR, VM, name, retired, keyword)."""


def _pydicom_module(name: str) -> ModuleType:
    """pydicom's module ``name`` (a dictionary: it imports nothing), loaded on its own."""
    full = f"pydicom.{name}"
    if full in sys.modules:
        return sys.modules[full]
    spec = importlib.util.find_spec("pydicom")  # finds, does not import, a top-level package
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("pydicom is not installed")
    path = os.path.join(spec.submodule_search_locations[0], f"{name}.py")
    spec = importlib.util.spec_from_file_location(full, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


if TYPE_CHECKING:  # at run time loaded on first use (by __getattr__), as is all of this module
    DicomDictionary: dict[int, Entry]
    RepeatersDictionary: dict[str, Entry]


def __getattr__(name: str) -> Any:
    """``DicomDictionary`` and ``RepeatersDictionary``, pydicom's, loaded on first use."""
    if name in ("DicomDictionary", "RepeatersDictionary"):
        return getattr(_dicom_dict(), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@cache
def _dicom_dict() -> ModuleType:
    return _pydicom_module("_dicom_dict")


def repeaters() -> dict[str, Entry]:
    """pydicom's ``RepeatersDictionary``: masks (``60xx0010``) to entries."""
    return _dicom_dict().RepeatersDictionary  # type: ignore[no-any-return]


@cache
def _masks() -> dict[str, tuple[int, int]]:  # pydicom.datadict.masks
    return {
        mask: (int(mask.replace("x", "0"), 16), int("".join("F0"[c == "x"] for c in mask), 16))
        for mask in repeaters()
    }


def mask_match(tag: int) -> str | None:
    """The repeaters dictionary key (``60xx0010``) matching ``tag``, or None."""
    for mask, (bits, care) in _masks().items():
        if (tag ^ bits) & care == 0:
            return mask
    return None


def get_entry(tag: int) -> Entry:
    """The dictionary entry of public ``tag`` (repeating groups too); KeyError if none."""
    module = _dicom_dict()
    try:
        return module.DicomDictionary[tag]  # type: ignore[no-any-return]
    except KeyError:
        if not tag >> 16 & 1:
            mask = mask_match(tag)
            if mask:
                return module.RepeatersDictionary[mask]  # type: ignore[no-any-return]
        raise KeyError(f"Tag {tag:08X} not found in DICOM dictionary") from None


def dictionary_VR(tag: int | str) -> str:
    """The VR of ``tag`` in the DICOM dictionary; KeyError if none. A str is read as
    ``pydicom.tag.Tag`` reads it: hex digits, else a keyword (ValueError if unknown)."""
    if not isinstance(tag, str):
        return get_entry(tag)[0]
    try:
        number = int(tag, 16)
    except ValueError:
        found = tag_for_keyword(tag)
        if found is None:
            raise ValueError(f"{tag!r} is not a DICOM keyword or a tag") from None
        number = found
    return get_entry(number)[0]


def keyword_for_tag(tag: int) -> str:
    """The keyword of ``tag`` in the DICOM dictionary, "" if none."""
    try:
        return get_entry(tag)[4]
    except KeyError:
        return ""


@cache
def _keywords() -> dict[str, int]:
    entries = _dicom_dict().DicomDictionary.items()
    return {entry[4]: tag for tag, entry in entries}  # datadict.keyword_dict


def tag_for_keyword(keyword: str) -> int | None:
    """The tag of ``keyword`` in the DICOM dictionary, None if none."""
    return _keywords().get(keyword)


@cache
def _private_dictionaries() -> dict[str, dict[str, tuple[str, str, str, str]]]:
    return _pydicom_module("_private_dict").private_dictionaries  # type: ignore[no-any-return]


def private_dictionary_VR(tag: int, private_creator: str) -> str:
    """The VR of private ``tag`` of ``private_creator``'s block in pydicom's private
    dictionary (block bytes matched as its ``xx`` masks); KeyError if none."""
    try:
        private = _private_dictionaries()[private_creator]
    except (KeyError, TypeError):
        raise KeyError(f"Private creator {private_creator!r} not in the dictionary") from None
    group, element = f"{tag >> 16:04X}", f"{tag & 0xFFFF:04X}"
    for key in (group + element, f"{group}xx{element[2:]}", f"{group[:2]}xxxx{element[2:]}"):
        if key in private:
            return private[key][0]
    raise KeyError(f"Tag {tag:08X} not in private dictionary for {private_creator!r}")


def private_transfer_syntaxes() -> list[Any]:
    """``pydicom.uid.PrivateTransferSyntaxes`` (registered at run time), if pydicom is loaded."""
    uid = sys.modules.get("pydicom.uid")
    return list(getattr(uid, "PrivateTransferSyntaxes", ()))

"""Hypothesis strategies for naturalized DICOM metadata, in the store's canonical stored form.

A canonical value is what a file ingest stores for the element (see README "Stored metadata"):
a scalar for one value and a list for several, ``None`` for an empty element (``[]`` for an
empty sequence), numbers for IS/DS/US/FL..., PersonName as ``{"Alphabetic": ...}``, AT as an
8-hex tag string, binary values as ``{"InlineBinary": ...}`` or ``{"BulkDataURI": ...}``,
sequences as lists of naturalized items; private and unknown tags keep their 8-hex key and
their DICOM JSON form ``{"vr": ..., "Value": [...]}``. The stored form must be a fixed point of
the store's input normalization: adding it and reading it back gives it back.

Besides canonical values, :func:`datasets` can produce the one input variation the store
documents for naturalized dicts on every branch: trailing DICOM padding (spaces, NULs) on text,
which is removed (:func:`expected_stored_form` applies it).
"""

from __future__ import annotations

import base64
import itertools
from collections.abc import Mapping
from typing import Any

from hypothesis import strategies as st
from pydicom.datadict import DicomDictionary, tag_for_keyword
from store_model import WADO_ROOTS

UID_ROOT = "2.25"
_uid_counter = itertools.count(1)

KEY_UIDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")
_SKIP = {*KEY_UIDS, "SpecificCharacterSet"}  # the character set would re-decode text on export

TEXT_VRS = ("AE", "AS", "CS", "LO", "LT", "SH", "ST", "UC", "UR", "UT")
INT_RANGES = {
    "IS": (-(2**31) + 1, 2**31 - 1), "US": (0, 2**16 - 1), "SS": (-(2**15), 2**15 - 1),
    "UL": (0, 2**32 - 1), "SL": (-(2**31), 2**31 - 1), "UV": (0, 2**64 - 1),
    "SV": (-(2**63), 2**63 - 1),
}  # fmt: skip
FLOAT_VRS = ("DS", "FL", "FD")
BINARY_VRS = ("OB", "OW", "OD", "OF", "OL", "OV", "UN")
VRS = (*TEXT_VRS, "DA", "TM", "DT", "UI", "PN", "AT", *INT_RANGES, *FLOAT_VRS, *BINARY_VRS)


def _keywords_by_vr() -> dict[str, list[tuple[str, bool]]]:
    """Public, non-retired dictionary keywords per VR, with "may hold several values"."""
    pool: dict[str, list[tuple[str, bool]]] = {}
    for tag, (vr, vm, _name, retired, keyword) in sorted(DicomDictionary.items()):
        if retired or not keyword or keyword in _SKIP or tag >> 16 in (0x0000, 0x0002):
            continue
        if tag_for_keyword(keyword) != tag or vr not in (*VRS, "SQ"):
            continue
        pool.setdefault(vr, []).append((keyword, vm != "1"))
    return pool


KEYWORDS = _keywords_by_vr()


def fresh_uid() -> str:
    """A UID never used before in this process (each example gets its own studies)."""
    return f"{UID_ROOT}.{next(_uid_counter)}"


# --------------------------------------------------------------------------- single values

_TEXT_CHARS = st.characters(
    blacklist_categories=("Cs",),  # lone surrogates cannot be encoded (robustness branch)
    blacklist_characters="\\\x00=",  # separators a file ingest would split on
)
_text = st.text(_TEXT_CHARS, min_size=1, max_size=24).filter(lambda s: s.rstrip(" ") == s)
_padded_text = st.tuples(_text, st.sampled_from(["", "", " ", "  ", "\x00"])).map("".join)
_date = st.dates().map(lambda d: d.strftime("%Y%m%d"))
_time = st.times().map(lambda t: t.strftime("%H%M%S.%f"))
_datetime = st.datetimes().map(lambda t: t.strftime("%Y%m%d%H%M%S.%f"))
_uid = (
    st.lists(st.integers(0, 10**12), min_size=2, max_size=8)
    .map(lambda parts: ".".join(map(str, [1, *parts])))
    .filter(lambda uid: len(uid) <= 64)
)
_person = st.fixed_dictionaries(
    {"Alphabetic": st.lists(_text, min_size=1, max_size=3).map("^".join)},
    optional={"Ideographic": _text, "Phonetic": _text},
)
_tag = st.integers(0, 0xFFFFFFFF).map(lambda t: f"{t:08X}")
_finite = st.floats(allow_nan=False, allow_infinity=False)
_binary = st.one_of(
    st.binary(min_size=1, max_size=64).map(
        lambda b: {"InlineBinary": base64.b64encode(b).decode("ascii")}
    ),
    st.integers(1, 10**6).map(lambda n: {"BulkDataURI": f"https://pacs/bulk/{n}"}),
)


def value_of(vr: str, *, padded: bool = True) -> st.SearchStrategy[Any]:
    """One canonical value of ``vr`` (text possibly with trailing padding if ``padded``)."""
    text = _padded_text if padded else _text
    if vr in TEXT_VRS:
        return text
    if vr in INT_RANGES:
        return st.integers(*INT_RANGES[vr])
    simple: dict[str, st.SearchStrategy[Any]] = {
        "DA": _date, "TM": _time, "DT": _datetime, "UI": _uid, "PN": _person, "AT": _tag,
        "DS": _finite, "FL": _finite, "FD": _finite,
    }  # fmt: skip
    return simple[vr]


def element_value(vr: str, multi: bool) -> st.SearchStrategy[Any]:
    """A keyword element's canonical naturalized value: scalar, list of >= 2, or None."""
    if vr in BINARY_VRS:
        return _binary
    one = value_of(vr)
    choices = [one, st.none()]
    if multi:
        choices.append(st.lists(st.one_of(one, st.none()), min_size=2, max_size=4))
    return st.one_of(*choices)


def private_element(vr: str) -> st.SearchStrategy[dict[str, Any]]:
    """A private or unknown element in DICOM JSON form (its stored form)."""
    if vr in BINARY_VRS:
        return _binary.map(lambda b: {"vr": vr, **b})
    values = st.lists(value_of(vr, padded=False), min_size=0, max_size=3)
    return values.map(lambda v: {"vr": vr, "Value": v} if v else {"vr": vr})


_private_tag = st.tuples(
    st.sampled_from([0x0009, 0x0011, 0x0019, 0x0029, 0x7FE1]), st.integers(0x1000, 0xFFFF)
).map(lambda ge: f"{ge[0]:04X}{ge[1]:04X}")


# --------------------------------------------------------------------------- datasets


@st.composite
def items(draw: st.DrawFn, depth: int, max_size: int = 6) -> dict[str, Any]:
    """A naturalized dataset (no key UIDs): keyword elements of many VRs, private elements,
    and sequences nested up to ``depth`` more levels."""
    out: dict[str, Any] = {}
    vrs = [*VRS, "SQ"] if depth > 0 else list(VRS)
    for _ in range(draw(st.integers(0, max_size))):
        vr = draw(st.sampled_from(vrs))
        if vr == "SQ":
            keyword, _multi = draw(st.sampled_from(KEYWORDS["SQ"]))
            out[keyword] = draw(st.lists(items(depth - 1, max_size=3), max_size=3))
        elif draw(st.integers(0, 5)) == 0:
            out[draw(_private_tag)] = draw(private_element(vr))
        elif vr in KEYWORDS:
            keyword, multi = draw(st.sampled_from(KEYWORDS[vr]))
            out[keyword] = draw(element_value(vr, multi))
    if depth > 0 and draw(st.integers(0, 3)) == 0:  # a private sequence of naturalized items
        seq = draw(st.lists(items(0, 3), min_size=1, max_size=2))
        out[draw(_private_tag)] = {"vr": "SQ", "Value": seq}
    return out


@st.composite
def datasets(draw: st.DrawFn, depth: int = 3) -> dict[str, Any]:
    """A naturalized instance with fresh Study/Series/SOP Instance UIDs."""
    md = draw(items(depth, max_size=12))
    return {"StudyInstanceUID": fresh_uid(), "SeriesInstanceUID": fresh_uid(),
            "SOPInstanceUID": fresh_uid(), **md}  # fmt: skip


def expected_stored_form(value: Any) -> Any:
    """``value`` after the store's documented normalization of naturalized input: text loses
    its trailing DICOM padding (spaces and NULs), at any depth, PersonName components too.
    Nothing else changes, on any backend (an integral float of 1e16 or more stays a float on
    PostgreSQL too: see repository.serialized.to_json)."""
    if isinstance(value, str):
        return value.rstrip(" \x00")
    if isinstance(value, list):
        return [expected_stored_form(v) for v in value]
    if isinstance(value, Mapping):
        return {k: expected_stored_form(v) for k, v in value.items()}
    return value


def strictly_equal(a: Any, b: Any) -> bool:
    """Equality that also tells 1 from 1.0 and True from 1, at any depth."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(strictly_equal(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(strictly_equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


# --------------------------------------------------------------------------- store operations

sources = st.sampled_from(sorted(WADO_ROOTS))
study_ix = st.integers(1, 2)
series_ix = st.integers(1, 3)


def maybe(value: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), value)


# Indexes into the example's UIDs, turned into metadata by the machine (it knows the prefix).
instance_spec = st.fixed_dictionaries({
    "study": study_ix, "series": series_ix, "sop": st.integers(1, 4),
    "PatientID": maybe(st.sampled_from(["A", "B"])),
    "InstanceNumber": maybe(st.integers(1, 3)),
    "ImageComments": st.sampled_from(["first copy", "second copy"]),
})  # fmt: skip
summary_spec = st.fixed_dictionaries({
    "study": study_ix, "series": series_ix,
    "SeriesDescription": maybe(st.sampled_from(["axial", "sagittal"])),
    "SeriesNumber": maybe(st.integers(1, 2)),
    "StudyDescription": maybe(st.sampled_from(["head", "chest"])),
})  # fmt: skip
study_spec = st.fixed_dictionaries({
    "study": study_ix,
    "PatientID": maybe(st.sampled_from(["A", "B"])),
    "StudyDescription": maybe(st.sampled_from(["head", "chest"])),
})  # fmt: skip
patch_spec = st.fixed_dictionaries({}, optional={
    "SeriesDescription": st.sampled_from(["updated", "again"]),
    "WindowCenter": st.sampled_from([40.0, [40.0, 400.0]]),
    "ImageComments": st.just("updated"),
    "OperatorsName": st.sampled_from([{"Alphabetic": "Op^One"}, {"Alphabetic": "Op^Two"}]),
})  # fmt: skip

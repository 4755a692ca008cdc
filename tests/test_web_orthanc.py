"""``dicom-repo serve`` and Orthanc (DICOMweb plugin) hold the same files: their QIDO-RS and
WADO-RS metadata answers must agree attribute by attribute, except for these documented
differences (also in README.md, "Serve to OHIF"):

- We leave out attributes without a value (Orthanc sends ``{"vr": ...}``): an empty
  ModalitiesInStudy breaks OHIF's study list.
- Orthanc converts text to its default encoding and reports SpecificCharacterSet
  ``ISO_IR 100`` (even for files without one); we report the file's own value.
- Our metadata also carries the file meta group (0002), group lengths (gggg0000) and, for
  encapsulated pixel data, a PixelData BulkDataURI; Orthanc leaves them out.
- Binary values up to 1 KiB are inline (InlineBinary) with us, BulkDataURIs with Orthanc.
- Attributes whose dictionary VR is ambiguous (``US or SS``) get the first VR with us.
- Text padding is stripped with us; numbers compare as numbers (``40`` and ``40.0``); an empty
  sequence is ``"Value": []`` with us.
- TimezoneOffsetFromUTC and PerformedProcedureStepStartDate/Time are not kept at the study and
  series level, so QIDO-RS does not return them there (Orthanc copies them from an instance).
- Values Orthanc cannot parse (it sends ``"Value": []``) or decodes otherwise (ISO 2022
  IR 13's yen sign in a CS value, an IS of ``"1A"``) are compared where both parsed them.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from orthanc import Orthanc, OrthancUnavailable, UploadedFile, find_orthanc
from pydicom.datadict import dictionary_VR
from web_server import WebServer

pytest_plugins = ("web_fixtures",)

ONLY_OURS_IN_METADATA = ("0002", "7FE00010")
IGNORED = ("00081190", "00080005", "00080201", "00400244", "00400245")
"""RetrieveURL (its host), SpecificCharacterSet, TimezoneOffsetFromUTC, PPS start date/time."""


@pytest.fixture(scope="module")
def orthanc(
    tmp_path_factory: pytest.TempPathFactory, web_files: list[UploadedFile]
) -> Iterator[tuple[Orthanc, list[UploadedFile]]]:
    """An Orthanc holding the same files, and the files it accepted."""
    try:
        install = find_orthanc()
    except OrthancUnavailable as error:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but Orthanc is unavailable: {error}")
        pytest.skip(f"Orthanc unavailable: {error}")
    server = Orthanc("web", tmp_path_factory.mktemp("orthanc"), *install).start()
    try:
        accepted = [f for f in web_files if server.upload(f.path) is not None]
        assert len(accepted) >= len(web_files) - 2
        yield server, accepted
    finally:
        server.stop()


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _same_scalar(ours: Any, theirs: Any) -> bool:
    if isinstance(ours, dict) and isinstance(theirs, dict):
        return {k: str(v).strip() for k, v in ours.items()} == {
            k: str(v).strip() for k, v in theirs.items() if v
        }
    a, b = _number(ours), _number(theirs)
    if a is not None and b is not None and not isinstance(ours, str | None):
        return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-20)
    return str(ours).strip() == str(theirs).strip()


def same_element(tag: str, ours: dict[str, Any], theirs: dict[str, Any]) -> bool:
    """Equal up to the documented differences."""
    binary = ("InlineBinary", "BulkDataURI")
    if any(k in ours for k in binary) and any(k in theirs for k in binary):
        return True
    ambiguous = " or " in _dictionary_vr(tag)
    if ours.get("vr") != theirs.get("vr") and not ambiguous:
        return False
    mine, other = ours.get("Value", []), theirs.get("Value", [])
    if theirs.get("vr") != "SQ" and other == [] and "Value" in theirs:
        return True  # Orthanc could not parse the value
    if ours.get("vr") == "SQ":
        return len(mine) == len(other) and all(
            same_dataset(a, b, metadata=True) == [] for a, b in zip(mine, other, strict=True)
        )
    if ours.get("vr") in ("UT", "LT", "ST"):  # single-valued: a backslash is text
        return _text(mine) == _text(other)
    if len(mine) != len(other):
        return "\\" in "".join(map(str, other)) or "¥" in "".join(map(str, other))
    return all(_same_scalar(a, b) for a, b in zip(mine, other, strict=True))


def _text(values: list[Any]) -> str:
    return "\\".join("" if v is None else str(v) for v in values).strip()


def _dictionary_vr(tag: str) -> str:
    try:
        return str(dictionary_VR(int(tag, 16)))
    except KeyError:
        return ""


def same_dataset(
    ours: dict[str, Any], theirs: dict[str, Any], *, metadata: bool, superset: bool = False
) -> list[tuple[str, Any, Any]]:
    """The attributes on which the two answers differ beyond the documented differences.

    ``superset``: attributes only we return are fine (``includefield=all`` returns everything
    we keep for the level; Orthanc returns its own selection).
    """
    problems = []
    for tag in sorted(set(ours) | set(theirs)):
        mine, other = ours.get(tag), theirs.get(tag)
        if tag in IGNORED:
            continue
        if mine is None:
            if other and ("Value" in other or "BulkDataURI" in other or "InlineBinary" in other):
                problems.append((tag, None, other))
        elif other is None:
            allowed = tag.startswith(ONLY_OURS_IN_METADATA) or tag.endswith("0000")
            if not ((metadata and allowed) or superset):
                problems.append((tag, mine, None))
        elif not same_element(tag, mine, other):
            problems.append((tag, mine, other))
    return problems


def _by(answer: list[dict[str, Any]], tag: str) -> dict[str, dict[str, Any]]:
    return {item[tag]["Value"][0]: item for item in answer}


def test_qido_answers_agree_with_orthanc(
    server: WebServer, orthanc: tuple[Orthanc, list[UploadedFile]]
) -> None:
    other, files = orthanc
    ours = _by(requests.get(f"{server.dicomweb}/studies", timeout=60).json(), "0020000D")
    theirs = _by(requests.get(f"{other.dicomweb}/studies", timeout=60).json(), "0020000D")
    assert set(theirs) == {f.study for f in files} <= set(ours)
    for uid, study in theirs.items():
        assert same_dataset(ours[uid], study, metadata=False) == [], uid
    for f in {f.series: f for f in files}.values():
        path = f"studies/{f.study}/series?includefield=all"
        mine = _by(requests.get(f"{server.dicomweb}/{path}", timeout=60).json(), "0020000E")
        them = _by(requests.get(f"{other.dicomweb}/{path}", timeout=60).json(), "0020000E")
        assert set(mine) == set(them)
        for uid, series in them.items():
            assert same_dataset(mine[uid], series, metadata=False, superset=True) == [], uid
        path = f"studies/{f.study}/series/{f.series}/instances"
        mine = _by(requests.get(f"{server.dicomweb}/{path}", timeout=60).json(), "00080018")
        them = _by(requests.get(f"{other.dicomweb}/{path}", timeout=60).json(), "00080018")
        assert set(mine) == set(them)
        for uid, instance in them.items():  # we add the series' RequestAttributesSequence
            assert same_dataset(mine[uid], instance, metadata=False, superset=True) == [], uid


def test_series_metadata_agrees_with_orthanc(
    server: WebServer, orthanc: tuple[Orthanc, list[UploadedFile]]
) -> None:
    other, files = orthanc
    for f in {f.series: f for f in files}.values():
        path = f"studies/{f.study}/series/{f.series}/metadata"
        mine = _by(requests.get(f"{server.dicomweb}/{path}", timeout=60).json(), "00080018")
        them = _by(requests.get(f"{other.dicomweb}/{path}", timeout=60).json(), "00080018")
        assert set(mine) == set(them)
        for uid, instance in them.items():
            assert same_dataset(mine[uid], instance, metadata=True) == [], (f.path.name, uid)

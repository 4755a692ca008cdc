"""Turn pydicom Datasets, DICOM JSON and naturalized dicts into the one stored form.

The stored form is OHIF's "naturalized" metadata: DICOM keywords as keys, single values as
scalars and multiple values as lists, PersonName as ``{"Alphabetic": ...}``, sequences as lists of
naturalized items. Private, unknown and repeating-group elements keep their 8-hex-digit tag as
key and their DICOM JSON form (``{"vr": ..., "Value": [...]}``), so nothing is lost. Binary values
larger than :data:`BULK_DATA_THRESHOLD` bytes are replaced by ``{"BulkDataURI": ...}``; they are
never stored inline.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag, Tag
from pydicom.valuerep import PersonName

from .errors import InvalidUIDError, InvalidValueError, MissingAttributeError

BULK_DATA_THRESHOLD = 1024
"""Binary values longer than this many bytes are stored as a ``BulkDataURI`` reference."""

OHIF_EXTRA_KEYS = frozenset({"imageId", "wadoRoot", "wadoUri", "url"})
"""Non-DICOM keys OHIF adds to instance metadata; accepted on input, kept out of the JSON."""

BINARY_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})
_TAG_KEY = re.compile(r"^[0-9A-Fa-f]{8}$")
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_DATE = re.compile(r"^(\d{4})\.?(\d{2})\.?(\d{2})$")

STUDY_KEYWORDS = (
    "StudyInstanceUID", "PatientName", "PatientID", "IssuerOfPatientID", "OtherPatientIDs",
    "PatientBirthDate", "PatientSex", "PatientAge", "PatientSize", "PatientWeight",
    "StudyDate", "StudyTime", "StudyID", "AccessionNumber", "ReferringPhysicianName",
    "StudyDescription", "ModalitiesInStudy", "NumberOfStudyRelatedSeries",
    "NumberOfStudyRelatedInstances", "SpecificCharacterSet",
)  # fmt: skip
"""Attributes copied from an instance (or a study input) into the study's metadata."""

SERIES_KEYWORDS = (
    "StudyInstanceUID", "SeriesInstanceUID", "Modality", "SeriesNumber", "SeriesDescription",
    "SeriesDate", "SeriesTime", "BodyPartExamined", "ProtocolName", "Laterality",
    "FrameOfReferenceUID", "Manufacturer", "ManufacturerModelName", "InstitutionName",
    "StationName", "OperatorsName", "PerformingPhysicianName",
    "NumberOfSeriesRelatedInstances", "SpecificCharacterSet",
)  # fmt: skip
"""Attributes copied from an instance into the series' summary metadata."""

Metadata = dict[str, Any]
BulkDataURI = Callable[[DataElement | RawDataElement], str | None]


@dataclass(frozen=True, slots=True)
class NormalizedInstance:
    """One instance in stored form, with the typed columns already extracted."""

    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str
    sop_class_uid: str | None
    instance_number: int | None
    number_of_frames: int | None
    rows: int | None
    columns: int | None
    transfer_syntax_uid: str | None
    image_id: str | None
    wado_root: str | None
    wado_uri: str | None
    metadata: Mapping[str, Any]  # a dict, or SerializedMetadata coming from a parse worker


# --------------------------------------------------------------------------- pydicom -> stored


def naturalize_dataset(ds: Dataset, bulk_data_uri: BulkDataURI | None = None) -> Metadata:
    """Return the stored form of a pydicom Dataset, file meta included.

    ``bulk_data_uri`` maps a large binary element to the URI stored in its place (``None`` when
    the data has no address). Elements pydicom cannot decode are kept as tag-keyed ``UN``.
    """
    out: Metadata = {}
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        _naturalize_into(out, meta, bulk_data_uri)
    _naturalize_into(out, ds, bulk_data_uri)
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
    vr = raw.VR or _dictionary_vr(BaseTag(tag))
    if vr in BINARY_VRS and _is_bulk(raw):
        key, kw = _key(BaseTag(tag))
        ref = {"BulkDataURI": bulk(raw) if bulk else None}
        out[key] = ref if kw else {"vr": vr, **ref}
        return
    try:
        elem = ds[tag]
        key, kw = _key(elem.tag)
        values = _element_values(elem, bulk)
    except Exception:  # pydicom could not decode it: keep the raw bytes, losing nothing
        key, kw = f"{int(tag):08X}", None
        values = _binary(raw.value if isinstance(raw.value, bytes) else b"", "UN")
        vr = "UN"
    else:
        vr = elem.VR
    out[key] = _natural_value(vr, values) if kw else _tagged_value(vr, values)


def _dictionary_vr(tag: BaseTag) -> str:
    """VR of an implicit-VR element: binary if any of the dictionary's choices is binary."""
    try:
        choices = dictionary_VR(tag).split(" or ")
    except KeyError:
        return "UN"
    return next((vr for vr in choices if vr in BINARY_VRS), choices[0])


def _is_bulk(raw: DataElement | RawDataElement) -> bool:
    if isinstance(raw, RawDataElement):
        return raw.value is None or raw.length > BULK_DATA_THRESHOLD
    value = raw.value
    return (value is None and raw.is_undefined_length) or (
        isinstance(value, bytes | bytearray) and len(value) > BULK_DATA_THRESHOLD
    )


def _key(tag: BaseTag) -> tuple[str, str | None]:
    """Keyword for public dictionary tags that map back to themselves, else the 8-hex tag."""
    if not tag.is_private:
        kw = keyword_for_tag(tag)
        if kw and tag_for_keyword(kw) == tag:
            return kw, kw
    return f"{int(tag):08X}", None


def _element_values(elem: DataElement, bulk: BulkDataURI | None) -> Any:
    """Values of one element as a list, or a binary dict for binary VRs."""
    value, vr = elem.value, elem.VR
    if vr == "SQ":
        return [naturalize_dataset(item, bulk) for item in value or ()]
    if vr in BINARY_VRS or isinstance(value, bytes | bytearray):
        if isinstance(value, bytes | bytearray):
            if len(value) > BULK_DATA_THRESHOLD:
                return {"BulkDataURI": bulk(elem) if bulk else None}
            return _binary(bytes(value), vr)
        if value is None:
            return []
    if value is None or value == "":
        return []
    items = list(value) if isinstance(value, MultiValue | list | tuple) else [value]
    return [_scalar(vr, v) for v in items]


def _binary(value: bytes, vr: str) -> dict[str, Any]:
    return {"InlineBinary": base64.b64encode(value).decode("ascii")} if value else {}


def _scalar(vr: str, v: Any) -> Any:
    if v is None or v == "":
        return None
    if isinstance(v, PersonName):
        return _pn_dict(v)
    if vr == "AT":
        return f"{int(v):08X}"
    if vr == "DS":
        return _number(v, float)
    if vr == "IS":
        return _number(v, int)
    if isinstance(v, str):
        return _clean_text(v)
    if isinstance(v, float):
        return float(v)
    if isinstance(v, int):
        return int(v)
    return _clean_text(str(v))


def _number(v: Any, kind: type) -> Any:
    try:
        number = kind(v)
    except (TypeError, ValueError):
        try:
            number = float(v)
        except (TypeError, ValueError):
            return _clean_text(str(v))  # keep malformed numbers verbatim rather than lose them
    if isinstance(number, float) and number != number:  # NaN is not JSON
        return _clean_text(str(v))
    return number


def _pn_dict(pn: PersonName) -> dict[str, str] | None:
    groups = {}
    for name, part in zip(("Alphabetic", "Ideographic", "Phonetic"), pn.components, strict=False):
        if part:
            groups[name] = _clean_text(part)
    return groups or None


def _clean_text(value: str) -> str:
    """Strip DICOM padding; reject NUL inside the value, which PostgreSQL cannot store."""
    value = value.rstrip("\x00 ")
    if "\x00" in value:
        raise InvalidValueError(f"text value {value[:40]!r} contains a NUL character")
    return value


def _natural_value(vr: str, values: Any) -> Any:
    if vr == "SQ":
        return values
    if isinstance(values, dict):
        return values or None
    if not values:
        return None
    return values[0] if len(values) == 1 else values


def _tagged_value(vr: str, values: Any) -> dict[str, Any]:
    if isinstance(values, dict):
        return {"vr": vr, **values}
    if vr == "PN":
        values = [v if v is not None else {} for v in values]
    return {"vr": vr, "Value": values} if values else {"vr": vr}


def file_bulk_uri(path: str | Path) -> BulkDataURI:
    """BulkDataURIs pointing into a file: ``file:///...?offset=N&length=M`` where known."""
    uri = Path(path).resolve().as_uri()

    def make(elem: DataElement | RawDataElement) -> str:
        if isinstance(elem, RawDataElement) and elem.length != 0xFFFFFFFF:
            return f"{uri}?offset={elem.value_tell}&length={elem.length}"
        return f"{uri}?tag={int(elem.tag):08X}"

    return make


# --------------------------------------------------------------------------- DICOM JSON -> stored


def is_dicom_json(obj: Mapping[str, Any]) -> bool:
    """True if ``obj`` looks like PS3.18 F.2 DICOM JSON (tag keys with ``vr`` objects)."""
    keys = [k for k in obj if k not in OHIF_EXTRA_KEYS]
    return bool(keys) and all(
        _TAG_KEY.match(k) and isinstance(obj[k], Mapping) and "vr" in obj[k] for k in keys
    )


def naturalize_dicom_json(obj: Mapping[str, Any]) -> Metadata:
    """Return the stored form of a DICOM JSON object (OHIF extra keys are passed through)."""
    out: Metadata = {}
    for key, elem in obj.items():
        if key in OHIF_EXTRA_KEYS:
            out[key] = elem
            continue
        if not _TAG_KEY.match(key) or not isinstance(elem, Mapping) or "vr" not in elem:
            raise InvalidValueError(f"DICOM JSON key {key!r} is not an 8-hex-digit tag with a vr")
        tag = Tag(int(key, 16))
        vr = str(elem["vr"])
        if "BulkDataURI" in elem:
            values: Any = {"BulkDataURI": elem["BulkDataURI"]}
        elif "InlineBinary" in elem:
            data = str(elem["InlineBinary"])
            big = len(data) * 3 // 4 > BULK_DATA_THRESHOLD
            values = {"BulkDataURI": None} if big else {"InlineBinary": data}
        else:
            raw = elem.get("Value") or []
            if not isinstance(raw, list):
                raise InvalidValueError(f"DICOM JSON element {key}: Value must be a list")
            if vr == "SQ":
                values = [naturalize_dicom_json(item or {}) for item in raw]
            else:
                values = [_json_scalar(vr, v, key) for v in raw]
        name, kw = _key(tag)
        out[name] = _natural_value(vr, values) if kw else _tagged_value(vr, values)
    return out


def _json_scalar(vr: str, v: Any, key: str) -> Any:
    if v is None:
        return None
    if vr == "PN":
        if not isinstance(v, Mapping):
            raise InvalidValueError(f"DICOM JSON element {key}: PN values must be objects")
        return {k: _clean_text(str(s)) for k, s in v.items() if s} or None
    if vr in ("DS", "IS") and isinstance(v, str):
        return _number(v, float if vr == "DS" else int)
    if isinstance(v, str):
        return _clean_text(v)
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise InvalidValueError(f"DICOM JSON element {key}: unexpected value {v!r}")
    return v


# --------------------------------------------------------------------------- naturalized input


def check_naturalized(obj: Mapping[str, Any], where: str = "") -> Metadata:
    """Validate a naturalized dict (keyword or tag keys) and return a cleaned copy."""
    out: Metadata = {}
    for key, value in obj.items():
        if not isinstance(key, str):
            raise InvalidValueError(f"{where}key {key!r} is not a string")
        if key in OHIF_EXTRA_KEYS and not where:
            out[key] = value
            continue
        if _TAG_KEY.match(key):
            tag = Tag(int(key, 16))
            name, kw = _key(tag)
            if kw is None:
                if not isinstance(value, Mapping) or "vr" not in value:
                    raise InvalidValueError(f"{where}{key}: a tag-keyed value needs a 'vr'")
                out[name] = naturalize_dicom_json({key: value})[name]
                continue
            key = name  # a public tag written as hex: store under its keyword
        elif not tag_for_keyword(key):
            raise InvalidValueError(f"{where}{key!r} is not a DICOM keyword or tag")
        out[key] = _check_value(key, value, where)
    return out


def _check_value(key: str, value: Any, where: str) -> Any:
    if isinstance(value, str):
        try:
            return _clean_text(value)
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


# --------------------------------------------------------------------------- instance


DatasetNaturalizer = Callable[[Dataset, BulkDataURI | None], Metadata]
"""A function from a Dataset to its stored form (``naturalize_dataset`` or a faster equal one)."""


def to_naturalized(
    obj: Dataset | Mapping[str, Any],
    bulk: BulkDataURI | None = None,
    naturalize: DatasetNaturalizer = naturalize_dataset,
) -> Metadata:
    """Any accepted input (Dataset, DICOM JSON, naturalized dict) in stored form."""
    if isinstance(obj, Dataset):
        return naturalize(obj, bulk)
    if not isinstance(obj, Mapping):
        raise InvalidValueError(f"expected a pydicom Dataset or a dict, got {type(obj).__name__}")
    if is_dicom_json(obj):
        return naturalize_dicom_json(obj)
    return check_naturalized(obj)


def normalize_instance(
    obj: Dataset | Mapping[str, Any],
    *,
    source: str,
    bulk: BulkDataURI | None = None,
    naturalize: DatasetNaturalizer = naturalize_dataset,
) -> NormalizedInstance:
    """Validate one instance and extract its typed columns; errors name ``source``."""
    try:
        md = to_naturalized(obj, bulk, naturalize)
        extras = {k: md.pop(k) for k in OHIF_EXTRA_KEYS & md.keys()}
        sop_uid = require_uid(md, "SOPInstanceUID")
        return NormalizedInstance(
            study_instance_uid=require_uid(md, "StudyInstanceUID"),
            series_instance_uid=require_uid(md, "SeriesInstanceUID"),
            sop_instance_uid=sop_uid,
            sop_class_uid=optional_uid(md, "SOPClassUID"),
            instance_number=as_int(md.get("InstanceNumber")),
            number_of_frames=as_int(md.get("NumberOfFrames")),
            rows=as_int(md.get("Rows")),
            columns=as_int(md.get("Columns")),
            transfer_syntax_uid=optional_uid(md, "TransferSyntaxUID")
            or _first_uid(md.get("AvailableTransferSyntaxUID")),
            image_id=_optional_str(extras.get("imageId"), "imageId"),
            wado_root=_optional_str(extras.get("wadoRoot"), "wadoRoot"),
            wado_uri=_optional_str(extras.get("wadoUri"), "wadoUri"),
            metadata=md,
        )
    except (InvalidValueError, MissingAttributeError, InvalidUIDError) as exc:
        raise type(exc)(f"{source}: {exc}") from None


def check_uid(value: Any, keyword: str) -> str:
    """Return ``value`` as a valid UID string or raise :class:`InvalidUIDError` naming it."""
    if not isinstance(value, str):
        raise InvalidUIDError(f"{keyword} {value!r} is not a UID string")
    uid = value.rstrip("\x00 ")
    if not uid or len(uid) > 64 or not _UID.match(uid):
        raise InvalidUIDError(f"{keyword} {value[:80]!r} is not a valid UID")
    return uid


def require_uid(md: Mapping[str, Any], keyword: str) -> str:
    """The UID under ``keyword``; :class:`MissingAttributeError` if absent or empty."""
    value = md.get(keyword)
    if value is None or value == "":
        raise MissingAttributeError(f"{keyword} is missing")
    return check_uid(value, keyword)


def optional_uid(md: Mapping[str, Any], keyword: str) -> str | None:
    """The UID under ``keyword`` if present, validated."""
    value = md.get(keyword)
    return None if value is None or value == "" else check_uid(value, keyword)


def _first_uid(value: Any) -> str | None:
    if isinstance(value, list):
        value = value[0] if value else None
    return check_uid(value, "AvailableTransferSyntaxUID") if value else None


def _optional_str(value: Any, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidValueError(f"{name} must be a string, got {type(value).__name__}")
    return value


def as_int(value: Any) -> int | None:
    """First value as int, or None when absent or not a number (the JSON keeps the original)."""
    if isinstance(value, list):
        value = value[0] if value else None
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = int(float(value))
    except (TypeError, ValueError, OverflowError):
        return None
    return number if -(2**31) <= number < 2**31 else None


def as_text(value: Any) -> str | None:
    """A value as text for a typed column: PN as its Alphabetic form, lists joined with '\\'."""
    if value is None:
        return None
    if isinstance(value, list):
        parts = [as_text(v) or "" for v in value]
        return "\\".join(parts) or None
    if isinstance(value, Mapping):
        return str(value.get("Alphabetic") or value.get("Ideographic") or "") or None
    return str(value) or None


def parse_date(value: Any) -> dt.date | None:
    """A DICOM DA value (``YYYYMMDD``, or ``YYYY.MM.DD`` from ACR-NEMA) as a date, else None."""
    if not isinstance(value, str):
        return None
    match = _DATE.match(value.strip())
    if not match:
        return None
    try:
        return dt.date(*(int(g) for g in match.groups()))
    except ValueError:
        return None


def pick(md: Mapping[str, Any], keywords: Iterable[str]) -> Metadata:
    """The subset of ``md`` under ``keywords`` (those present)."""
    return {k: md[k] for k in keywords if k in md}


# --------------------------------------------------------------------------- stored -> pydicom


def to_dicom_json(md: Mapping[str, Any]) -> dict[str, Any]:
    """The stored form back as DICOM JSON (the inverse of :func:`naturalize_dicom_json`)."""
    out: dict[str, Any] = {}
    for key, value in md.items():
        if key in OHIF_EXTRA_KEYS:
            continue
        if _TAG_KEY.match(key):
            elem = dict(value)
            if elem.get("vr") == "SQ":
                elem["Value"] = [to_dicom_json(item) for item in elem.get("Value", [])]
            out[key.upper()] = elem
            continue
        tag = tag_for_keyword(key)
        if tag is None:
            raise InvalidValueError(f"{key!r} is not a DICOM keyword or tag")
        vr = dictionary_VR(tag).split(" or ")[0]
        elem = {"vr": vr}
        if isinstance(value, Mapping) and ("BulkDataURI" in value or "InlineBinary" in value):
            elem.update(value)
        elif vr == "SQ":
            elem["Value"] = [to_dicom_json(item) for item in value or []]
        elif value is not None:
            elem["Value"] = value if isinstance(value, list) else [value]
        out[f"{tag:08X}"] = elem
    return out


def to_dataset(md: Mapping[str, Any]) -> Dataset:
    """A pydicom Dataset from the stored form; bulk data references become empty values.

    Values that were stored verbatim because they were malformed (an IS of ``"1A"``) are set as
    raw strings, as pydicom itself would read them from a file.
    """
    from pydicom.dataset import FileMetaDataset

    ds, meta = Dataset(), FileMetaDataset()
    for key, elem in to_dicom_json(md).items():
        target = meta if key.startswith("0002") else ds
        target[int(key, 16)] = _element_from_json(key, elem)
    if len(meta):
        ds.file_meta = meta
    return ds


def _element_from_json(key: str, elem: Mapping[str, Any]) -> DataElement | RawDataElement:
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

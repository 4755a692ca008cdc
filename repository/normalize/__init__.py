"""Turn pydicom Datasets, DICOM JSON and naturalized dicts into the one stored form.

The stored form is OHIF's "naturalized" metadata: DICOM keywords as keys, single values as
scalars and multiple values as lists, PersonName as ``{"Alphabetic": ...}``, sequences as lists of
naturalized items. Private, unknown and repeating-group elements keep their 8-hex-digit tag as
key and their DICOM JSON form (``{"vr": ..., "Value": [...]}``), so nothing is lost. Binary values
larger than :data:`BULK_DATA_THRESHOLD` bytes are replaced by ``{"BulkDataURI": ...}``; they are
never stored inline.

Modules: :mod:`.dataset` (pydicom), :mod:`.dicom_json`, :mod:`.naturalized` (checks of
naturalized input), :mod:`.instance` (one instance and its typed columns), :mod:`.export` (the
way out), :mod:`.values` (shared constants and the scalar converter), :mod:`.dictionary`
(pydicom's data dictionaries, without importing pydicom).
"""

from .dataset import file_bulk_uri, naturalize_dataset
from .dicom_json import is_dicom_json, naturalize_dicom_json
from .export import to_dataset, to_dicom_json
from .instance import (
    SERIES_KEYWORDS,
    STUDY_KEYWORDS,
    NormalizedInstance,
    instance_from_metadata,
    normalize_instance,
    pick,
    to_naturalized,
)
from .naturalized import check_naturalized
from .values import (
    BINARY_VRS,
    BULK_DATA_THRESHOLD,
    OHIF_EXTRA_KEYS,
    BulkDataURI,
    Metadata,
)

__all__ = [
    "BINARY_VRS",
    "BULK_DATA_THRESHOLD",
    "OHIF_EXTRA_KEYS",
    "SERIES_KEYWORDS",
    "STUDY_KEYWORDS",
    "BulkDataURI",
    "Metadata",
    "NormalizedInstance",
    "check_naturalized",
    "file_bulk_uri",
    "instance_from_metadata",
    "is_dicom_json",
    "naturalize_dataset",
    "naturalize_dicom_json",
    "normalize_instance",
    "pick",
    "to_dataset",
    "to_dicom_json",
    "to_naturalized",
]

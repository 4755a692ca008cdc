"""isinstance tests against pydicom's classes that do not import pydicom.

No value can be an instance of a pydicom class before pydicom has been imported: each test
looks the class up in ``sys.modules`` and is False while pydicom is not loaded, so a file
ingest, which reads most files without pydicom, starts (and often ends) without importing it.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # typing_extensions (SQLAlchemy's dependency) only for TypeIs, in Python 3.13
    from pydicom.dataelem import RawDataElement
    from pydicom.dataset import Dataset
    from pydicom.valuerep import PersonName
    from typing_extensions import TypeIs


def loaded_class(module: str, name: str) -> type | None:
    """Class ``name`` of pydicom's ``module`` if that module is loaded, else None."""
    found = sys.modules.get(module)
    cls = getattr(found, name, None) if found is not None else None
    return cls if isinstance(cls, type) else None


def is_instance(obj: object, module: str, name: str) -> bool:
    """``isinstance(obj, module.name)``, False (nothing imported) if the module is not loaded."""
    cls = loaded_class(module, name)
    return cls is not None and isinstance(obj, cls)


def is_dataset(obj: object) -> TypeIs[Dataset]:
    """True if ``obj`` is a pydicom Dataset (FileDataset and FileMetaDataset included)."""
    return is_instance(obj, "pydicom.dataset", "Dataset")


def is_person_name(obj: object) -> TypeIs[PersonName]:
    """True if ``obj`` is a pydicom PersonName."""
    return is_instance(obj, "pydicom.valuerep", "PersonName")


def is_raw_data_element(obj: object) -> TypeIs[RawDataElement]:
    """True if ``obj`` is a pydicom RawDataElement (an element read but not converted)."""
    return is_instance(obj, "pydicom.dataelem", "RawDataElement")

"""OHIF's DicomMetadataStore as a relational DICOM metadata repository.

>>> import repository
>>> store = repository.connect()          # $DICOM_REPO_URL, else sqlite:///dicom-repo.db
>>> store.get_study_instance_uids()

The names below are loaded on first use (PEP 562): ``import repository`` alone, or a command of
the CLI that never opens the database, does not pay for SQLAlchemy, the driver or pydicom.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from .config import DEFAULT_URL
from .errors import (
    ConflictError,
    ConnectionLostError,
    DatabaseError,
    FeedGapError,
    InvalidInputError,
    InvalidUIDError,
    InvalidValueError,
    MissingAttributeError,
    NotDicomError,
    NotFoundError,
    NotMigratedError,
    QueryError,
    QueryRefusedError,
    RepositoryError,
    ServerReadOnlyError,
    TransactionConflictError,
)

if TYPE_CHECKING:
    from .connection import connect
    from .events import EVENTS, Event, Subscription
    from .models import AddResult, DeleteResult, Instance, Series, SeriesList, Study
    from .store import Store
    from .summaries import StudySummary

_LAZY = {
    "connect": "connection",
    "EVENTS": "events",
    "Event": "events",
    "Subscription": "events",
    "AddResult": "models",
    "DeleteResult": "models",
    "Instance": "models",
    "Series": "models",
    "SeriesList": "models",
    "Study": "models",
    "Store": "store",
    "StudySummary": "summaries",
}
"""Public name -> the module of this package that defines it, imported on first use."""


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'repository' has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "DEFAULT_URL",
    "EVENTS",
    "AddResult",
    "ConflictError",
    "ConnectionLostError",
    "DatabaseError",
    "DeleteResult",
    "Event",
    "FeedGapError",
    "Instance",
    "InvalidInputError",
    "InvalidUIDError",
    "InvalidValueError",
    "MissingAttributeError",
    "NotDicomError",
    "NotFoundError",
    "NotMigratedError",
    "QueryError",
    "QueryRefusedError",
    "RepositoryError",
    "Series",
    "SeriesList",
    "ServerReadOnlyError",
    "Store",
    "Study",
    "StudySummary",
    "Subscription",
    "TransactionConflictError",
    "connect",
]

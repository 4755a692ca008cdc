"""OHIF's DicomMetadataStore as a relational DICOM metadata repository.

>>> import repository
>>> store = repository.connect()          # $DICOM_REPO_URL, else sqlite:///dicom-repo.db
>>> store.get_study_instance_uids()
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Engine

from . import migrate
from .config import DEFAULT_URL, resolve_url
from .engine import make_engine
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
    TransactionConflictError,
)
from .events import EVENTS, Event, Subscription
from .models import AddResult, DeleteResult, Instance, Series, SeriesList, Study
from .store import Store
from .summaries import StudySummary
from .unit_of_work import run_with_retries
from .validation import strip_credentials

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
    "Store",
    "Study",
    "StudySummary",
    "Subscription",
    "TransactionConflictError",
    "connect",
]


def connect(
    url: str | None = None,
    *,
    poll_interval: float | None = None,
    engine_options: Mapping[str, Any] | None = None,
) -> Store:
    """Open the store at ``url`` (else ``$DICOM_REPO_URL``, else ``sqlite:///dicom-repo.db``).

    ``poll_interval`` is how often (seconds) the change-feed follower of a store with
    subscribers reads the change log unprompted: SQLite's only way to see other processes'
    commits (default 0.2), a safety net under LISTEN/NOTIFY on PostgreSQL (default 10).

    A new, empty SQLite database is created and migrated on the spot. Any other database must
    already be at the current schema revision (``dicom-repo db upgrade``), else
    :class:`NotMigratedError` is raised; PostgreSQL is never migrated implicitly.

    ``engine_options`` are passed to SQLAlchemy's ``create_engine`` (``pool_size``, ...).
    """
    if poll_interval is not None and (
        isinstance(poll_interval, bool)
        or not isinstance(poll_interval, int | float)
        or not poll_interval > 0
    ):
        raise InvalidValueError(f"poll_interval must be positive seconds, not {poll_interval!r}")
    try:
        engine = make_engine(resolve_url(url), **(engine_options or {}))
    except Exception as error:
        raise DatabaseError(
            f"invalid database URL {url and strip_credentials(url)!r}: {error}"
        ) from error
    try:
        run_with_retries(lambda: _open(engine))
    except NotMigratedError:
        engine.dispose()
        raise
    except Exception as error:
        engine.dispose()
        where = strip_credentials(engine.url)
        raise DatabaseError(f"cannot open database {where}: {error}") from error
    return Store(engine, poll_interval=poll_interval)


def _open(engine: Engine) -> None:
    """Create a new SQLite database's schema, then check the revision (run again if the
    connection is lost on the way, as a write would be)."""
    if engine.dialect.name == "sqlite" and migrate.is_empty(engine):
        migrate.upgrade(engine)
    migrate.ensure_current(engine)

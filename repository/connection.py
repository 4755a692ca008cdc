"""``repository.connect``: open the store at a URL (and its read replicas), migrated or refused."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Engine

from . import config, migrate
from .config import resolve_url
from .db_errors import run_with_retries
from .engine import make_engine
from .errors import DatabaseError, InvalidValueError, NotMigratedError
from .replicas import DEFAULT_MAX_LAG, ReadRouter
from .store import Store
from .validation import strip_credentials

__all__ = ["connect"]


def connect(
    url: str | None = None,
    *,
    poll_interval: float | None = None,
    read_urls: Sequence[str] | None = None,
    max_lag: float = DEFAULT_MAX_LAG,
    engine_options: Mapping[str, Any] | None = None,
) -> Store:
    """Open the store at ``url`` (else ``$DICOM_REPO_URL``, else ``sqlite:///dicom-repo.db``).

    ``read_urls`` (else the space-separated ``$DICOM_REPO_READ_URLS``) are PostgreSQL hot
    standbys of ``url``: reads go to one of them that is up and lags at most ``max_lag``
    seconds, writes to ``url`` (see :mod:`repository.replicas`).

    ``poll_interval`` is how often (seconds) the change-feed follower of a store with
    subscribers reads the change log unprompted: SQLite's only way to see other processes'
    commits (default 0.2), a safety net under LISTEN/NOTIFY on PostgreSQL (default 10).

    A new, empty SQLite database is created and migrated on the spot. Any other database must
    already be at the current schema revision (``dicom-repo db upgrade``), else
    :class:`NotMigratedError` is raised; PostgreSQL is never migrated implicitly.

    ``engine_options`` are passed to SQLAlchemy's ``create_engine`` for ``url`` and each read
    URL (``pool_size``, ...).
    """
    if poll_interval is not None and (
        isinstance(poll_interval, bool)
        or not isinstance(poll_interval, int | float)
        or not poll_interval > 0
    ):
        raise InvalidValueError(f"poll_interval must be positive seconds, not {poll_interval!r}")
    if isinstance(max_lag, bool) or not isinstance(max_lag, int | float) or not max_lag >= 0:
        raise InvalidValueError(f"max_lag must be seconds (>= 0), not {max_lag!r}")
    options = dict(engine_options or {})
    engine = _engine(url, options)
    readers: list[Engine] = []
    try:
        run_with_retries(lambda: _open(engine))
        for read_url in config.read_urls(read_urls):
            readers.append(_engine(read_url, options))
            if readers[-1].dialect.name != "postgresql" or engine.dialect.name != "postgresql":
                raise InvalidValueError("read URLs (standbys) need a PostgreSQL primary URL")
    except Exception as error:
        for opened in (engine, *readers):
            opened.dispose()
        if isinstance(error, NotMigratedError | InvalidValueError):
            raise
        where = strip_credentials(engine.url)
        raise DatabaseError(f"cannot open database {where}: {error}") from error
    return Store(engine, poll_interval=poll_interval, router=ReadRouter(engine, readers, max_lag))


def _engine(url: str | None, options: dict[str, Any]) -> Engine:
    try:
        return make_engine(resolve_url(url), **options)
    except Exception as error:
        raise DatabaseError(
            f"invalid database URL {url and strip_credentials(url)!r}: {error}"
        ) from error


def _open(engine: Engine) -> None:
    """Create a new SQLite database's schema, then check the revision (run again if the
    connection is lost on the way, as a write would be)."""
    if engine.dialect.name == "sqlite" and migrate.is_empty(engine):
        migrate.upgrade(engine)
    migrate.ensure_current(engine)

"""Alembic migrations, run from the checkout's ``migrations/`` or the copy inside the wheel."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Column, Connection, Engine, Index, func, inspect, select

from .errors import NotMigratedError, RepositoryError
from .schema import Base
from .unit_of_work import translate_errors
from .validation import strip_credentials


def migrations_dir() -> Path:
    """The alembic script directory: packaged in the wheel, or ``migrations/`` of a checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "_migrations", here.parent / "migrations"):
        if (candidate / "env.py").is_file():
            return candidate
    raise RepositoryError(f"alembic migrations not found next to {here}")


def alembic_config(connection: Connection | None = None) -> Config:
    """An alembic Config pointing at our migrations, sharing ``connection`` if given."""
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest revision this library ships."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


@translate_errors("cannot read the schema revision")
def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None for an unmigrated database)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


MIGRATION_LOCK_KEY = 0x6469636F6D5F6D67  # "dicom_mg"
"""PostgreSQL advisory lock held by the process that migrates, for its whole transaction."""


@contextmanager
def _migrating(engine: Engine) -> Iterator[Connection]:
    """One migration at a time, even when several processes open a new database at once.

    SQLite: the transaction starts with ``BEGIN IMMEDIATE`` (the write lock, waited for with
    the busy timeout); PostgreSQL: a transaction-scoped advisory lock. The next process then
    finds the database migrated and alembic does nothing.
    """
    with engine.connect().execution_options(dicom_repo_write=True) as conn, conn.begin():
        if conn.dialect.name == "postgresql":
            conn.execute(select(func.pg_advisory_xact_lock(MIGRATION_LOCK_KEY)))
        yield conn


@translate_errors("upgrade failed")
def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate the database up to ``revision``."""
    with _migrating(engine) as conn:
        command.upgrade(alembic_config(conn), revision)


@translate_errors("downgrade failed")
def downgrade(engine: Engine, revision: str) -> None:
    """Migrate the database down to ``revision`` (``"base"`` drops everything)."""
    with _migrating(engine) as conn:
        command.downgrade(alembic_config(conn), revision)


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """Alembic's comparison hook: expression indexes are left out, everything else compared.

    Expression indexes (the reporting migration's, or one a user adds for a private tag) have
    no counterpart in the models, and SQLAlchemy cannot reflect their expressions anyway; the
    reporting views are not tables and are never reflected.
    """
    if type_ == "index" and reflected and compare_to is None and isinstance(obj, Index):
        return all(isinstance(expr, Column) for expr in obj.expressions)
    return True


@translate_errors("cannot compare the schema")
def model_differences(engine: Engine) -> list[object]:
    """Differences between the migrated database and the models (empty when they agree)."""
    with engine.connect() as conn, warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression-based")
        opts = {"compare_type": True, "include_object": include_object}
        context = MigrationContext.configure(conn, opts=opts)
        return list(compare_metadata(context, Base.metadata))


@translate_errors("cannot list the tables")
def is_empty(engine: Engine) -> bool:
    """True when the database has none of our tables and no alembic version table."""
    names = set(inspect(engine).get_table_names())
    return not names & ({"alembic_version"} | set(Base.metadata.tables))


def ensure_current(engine: Engine) -> None:
    """Raise :class:`NotMigratedError` unless the database is at this library's head."""
    current, head = current_revision(engine), head_revision()
    if current != head:
        where = strip_credentials(engine.url)
        state = "not migrated" if current is None else f"at revision {current}, not {head}"
        raise NotMigratedError(
            f"database {where} is {state}: run `dicom-repo --db '{where}' db upgrade`"
        )

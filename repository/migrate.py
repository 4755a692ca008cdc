"""Alembic migrations, run from the checkout's ``migrations/`` or the copy inside the wheel.

Opening a store only checks the database's revision (:func:`ensure_current`): plain queries of
the ``alembic_version`` table, compared with the head read from the migration files. alembic
itself (a quarter of a second to import) is imported only by the functions that migrate or
compare the schema.
"""

from __future__ import annotations

import ast
import functools
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Column, Connection, Engine, Index, func, inspect, select, text

from .db_errors import translate_errors
from .errors import DatabaseError, NotMigratedError, RepositoryError
from .schema import metadata_obj
from .validation import strip_credentials

if TYPE_CHECKING:
    from alembic.config import Config

VERSION_TABLE = "alembic_version"
"""Where alembic keeps the database's revision (its default name, which env.py keeps)."""


def migrations_dir() -> Path:
    """The alembic script directory: packaged in the wheel, or ``migrations/`` of a checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "_migrations", here.parent / "migrations"):
        if (candidate / "env.py").is_file():
            return candidate
    raise RepositoryError(f"alembic migrations not found next to {here}")


def alembic_config(connection: Connection | None = None) -> Config:
    """An alembic Config pointing at our migrations, sharing ``connection`` if given."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.attributes["connection"] = connection
    return config


@functools.cache
def head_revision() -> str:
    """The newest revision this library ships (:func:`script_head` of our migrations)."""
    return script_head(migrations_dir() / "versions")


def script_head(versions: Path) -> str:
    """The head of the migrations in ``versions``: the one revision no other one revises.

    Read from the ``revision`` and ``down_revision`` lines of the files alembic loads (every
    ``.py`` but ``__init__.py``) without importing alembic; tests hold it equal to alembic's.
    """
    parents: dict[str, tuple[str, ...]] = {}
    for path in sorted(versions.glob("*.py")):
        if path.name != "__init__.py" and not path.name.startswith(".#"):
            revision, down = _revision_lines(path)
            parents[revision] = down
    heads = sorted(set(parents) - {down for downs in parents.values() for down in downs})
    if len(heads) != 1:
        raise RepositoryError(f"the migrations in {versions} have {len(heads)} heads: {heads}")
    return heads[0]


def _revision_lines(path: Path) -> tuple[str, tuple[str, ...]]:
    """A migration file's ``revision`` and its ``down_revision`` (none, one or a merge's)."""
    found = _parsed(path.read_text(encoding="utf-8"), path)
    revision, down = found.get("revision"), found.get("down_revision")
    downs = (down,) if isinstance(down, str) else down or ()
    if not isinstance(revision, str) or not isinstance(downs, tuple | list):
        raise RepositoryError(f"{path}: no revision = '...' and down_revision = ... lines")
    if not all(isinstance(d, str) for d in downs):
        raise RepositoryError(f"{path}: down_revision is not a revision or a list of them")
    return revision, tuple(downs)


def _parsed(source: str, path: Path) -> dict[str, Any]:
    """The module-level ``revision`` and ``down_revision`` of ``source`` (parsing a file takes
    about a millisecond, once per process: :func:`head_revision` is cached)."""
    try:
        module = ast.parse(source, str(path))
    except SyntaxError as error:
        raise RepositoryError(f"{path}: {error}") from None
    found: dict[str, Any] = {}
    for node in module.body:
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        for target in targets:
            if isinstance(target, ast.Name) and target.id in ("revision", "down_revision"):
                try:
                    found[target.id] = ast.literal_eval(value)
                except ValueError:
                    raise RepositoryError(
                        f"{path}: cannot read {target.id} = {ast.unparse(value)}"
                    ) from None
    return found


@translate_errors("cannot read the schema revision")
def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None for an unmigrated database)."""
    with engine.connect() as conn:
        if not inspect(conn).has_table(VERSION_TABLE):
            return None
        rows = conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()
    if len(rows) > 1:
        raise DatabaseError(f"{VERSION_TABLE} holds several revisions ({', '.join(rows)})")
    return rows[0] if rows else None


MIGRATION_LOCK_KEY = 0x6469636F6D5F6D67  # "dicom_mg"
"""PostgreSQL advisory lock held by the process that migrates, for its whole transaction."""


@contextmanager
def _migrating(engine: Engine) -> Iterator[Connection]:
    """One migration at a time, even when several processes open a new database at once.

    SQLite: the transaction starts with ``BEGIN IMMEDIATE`` (the write lock, waited for with
    the busy timeout); PostgreSQL: a transaction-scoped advisory lock. The next process then
    finds the database migrated and alembic does nothing.

    SQLite: foreign keys are off while migrating (a pragma that only works outside a
    transaction): a migration that rebuilds a table (alembic's batch mode) drops the old one,
    which would otherwise cascade its deletes to the rows that reference it.
    """
    with engine.connect().execution_options(dicom_repo_write=True) as conn:
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:
            conn.connection.driver_connection.execute("PRAGMA foreign_keys = OFF")  # type: ignore[union-attr]
        try:
            with conn.begin():
                if not sqlite:
                    conn.execute(select(func.pg_advisory_xact_lock(MIGRATION_LOCK_KEY)))
                yield conn
        finally:
            if sqlite:
                conn.connection.driver_connection.execute("PRAGMA foreign_keys = ON")  # type: ignore[union-attr]


@translate_errors("upgrade failed")
def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate the database up to ``revision``."""
    from alembic import command

    with _migrating(engine) as conn:
        command.upgrade(alembic_config(conn), revision)


@translate_errors("downgrade failed")
def downgrade(engine: Engine, revision: str) -> None:
    """Migrate the database down to ``revision`` (``"base"`` drops everything)."""
    from alembic import command

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
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from . import citus

    with engine.connect() as conn, warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression-based")
        opts = {"compare_type": True, "include_object": include_object}
        context = MigrationContext.configure(conn, opts=opts)
        replaced = citus.replaced_by_primary_keys(conn)
        return [
            diff
            for diff in compare_metadata(context, metadata_obj)
            if not (diff[0] == "add_constraint" and getattr(diff[1], "name", None) in replaced)
        ]


@translate_errors("cannot list the tables")
def is_empty(engine: Engine) -> bool:
    """True when the database has none of our tables and no alembic version table."""
    names = set(inspect(engine).get_table_names())
    return not names & ({VERSION_TABLE} | set(metadata_obj.tables))


def ensure_current(engine: Engine) -> None:
    """Raise :class:`NotMigratedError` unless the database is at this library's head."""
    current, head = current_revision(engine), head_revision()
    if current != head:
        where = strip_credentials(engine.url)
        state = "not migrated" if current is None else f"at revision {current}, not {head}"
        raise NotMigratedError(
            f"database {where} is {state}: run `dicom-repo --db '{where}' db upgrade`"
        )

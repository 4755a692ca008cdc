"""Alembic environment: migrates the database named by the caller, $DICOM_REPO_URL or the default.

`dicom-repo db upgrade` passes an open connection in ``config.attributes["connection"]``; plain
`alembic upgrade head` from a checkout uses ``sqlalchemy.url`` if set, else the same default URL
the library uses.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from repository.config import resolve_url
from repository.migrate import include_object
from repository.schema import metadata_obj

config = context.config
target_metadata = metadata_obj


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_object=include_object,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run against the caller's connection, or open one from the configured URL."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_engine(resolve_url(config.get_main_option("sqlalchemy.url") or None))
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


def run_migrations_offline() -> None:
    """Emit SQL for the configured URL instead of running it."""
    context.configure(
        url=resolve_url(config.get_main_option("sqlalchemy.url") or None),
        target_metadata=target_metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()

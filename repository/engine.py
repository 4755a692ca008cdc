"""Engines for SQLite and PostgreSQL, configured the way the store needs them."""

from __future__ import annotations

from importlib import import_module
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, Table, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import StaticPool

from .config import resolve_url
from .serialized import to_json

SQLITE_BUSY_TIMEOUT_MS = 60_000
POOL_MODES = ("session", "transaction", "statement")
POOL_MODE_OPTION = "dicom_repo_pool_mode"


def dumps(value: Any) -> str:
    """Serialize JSON for the database (:func:`repository.serialized.to_json`, as text;
    metadata serialized by a parse worker is passed through as it is)."""
    return to_json(value).decode()


def make_engine(url: str | None = None, **kwargs: Any) -> Engine:
    """Create an engine for ``url`` (see :func:`repository.config.resolve_url`).

    SQLite gets WAL, foreign keys, a busy timeout, and write transactions that start with
    ``BEGIN IMMEDIATE`` (so two writers queue instead of failing on lock upgrade).
    """
    resolved = make_url(resolve_url(url))
    options: dict[str, Any] = {"json_serializer": dumps, "json_deserializer": orjson.loads}
    if resolved.get_backend_name() == "sqlite":
        if resolved.database in (None, "", ":memory:"):
            options.update(poolclass=StaticPool, connect_args={"check_same_thread": False})
        engine = create_engine(resolved, **options, **kwargs)
        _configure_sqlite(engine)
        return engine
    options.setdefault("pool_pre_ping", True)
    resolved, connect_args, pool_mode = pooler_options(resolved)
    if connect_args:
        options["connect_args"] = {**connect_args, **kwargs.pop("connect_args", {})}
    options["execution_options"] = {POOL_MODE_OPTION: pool_mode}
    return create_engine(resolved, **options, **kwargs)


def pooler_options(url: URL) -> tuple[URL, dict[str, Any], str]:
    """``url`` without this library's connection-pooler options, the psycopg connect arguments
    they stand for, and the pool mode.

    ``?pool_mode=transaction`` says a transaction-pooling pgbouncer is in between: psycopg's
    prepared statements are turned off (pgbouncer < 1.21 cannot route them) and the change feed
    does not LISTEN through it. ``?prepare_threshold=none`` (or a number) sets psycopg's own
    option, which a URL query cannot otherwise carry (it would arrive as a string).
    """
    query = dict(url.query)
    mode = str(query.pop("pool_mode", "session")).lower()
    if mode not in POOL_MODES:
        raise ValueError(f"pool_mode must be one of {', '.join(POOL_MODES)}, not {mode!r}")
    connect_args: dict[str, Any] = {}
    if mode != "session":
        connect_args["prepare_threshold"] = None
    threshold = query.pop("prepare_threshold", None)
    if isinstance(threshold, str):
        if threshold.lower() in ("none", "null", "off", ""):
            connect_args["prepare_threshold"] = None
        elif threshold.isdigit():
            connect_args["prepare_threshold"] = int(threshold)
        else:
            raise ValueError(f"prepare_threshold must be a number or none, not {threshold!r}")
    return url.set(query=query), connect_args, mode


def pool_mode(engine: Engine) -> str:
    """The ``pool_mode`` of the engine's URL: ``session`` (a direct server, or a pooler in
    session mode), ``transaction`` or ``statement``."""
    return str(engine.get_execution_options().get(POOL_MODE_OPTION, "session"))


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let us issue BEGIN ourselves (pysqlite's implicit BEGIN is deferred and skips DDL).
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys = ON")
        if engine.url.database not in (None, "", ":memory:"):
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        write = conn.get_execution_options().get("dicom_repo_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def insert_or_skip(conn: Connection, table: Table) -> Any:
    """``INSERT`` into ``table`` in the connection's dialect, whose ``on_conflict_do_nothing``
    skips rows already there (SQLite and PostgreSQL spell it alike). The dialect's module is
    imported here, on first use: a SQLite command never loads the PostgreSQL dialect."""
    return import_module(f"sqlalchemy.dialects.{conn.dialect.name}").insert(table)

"""Shared bench plumbing: databases to run against, timing, and the JSON line each figure is."""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from repository import migrate
from repository.config import resolve_url
from repository.engine import make_engine


def backend(url: str) -> str:
    """``sqlite`` or ``postgresql``."""
    return make_url(resolve_url(url)).get_backend_name()


def emit(
    bench: str, url: str, value: float, unit: str, baseline: float, ratio: float, **extra: Any
) -> dict[str, Any]:
    """Print one figure as a JSON line: value and baseline from the same run, and their ratio."""
    line = {
        "bench": bench,
        "backend": backend(url),
        "value": round(value, 4),
        "unit": unit,
        "baseline": round(baseline, 4),
        "ratio": round(ratio, 3),
        **extra,
    }
    print(orjson.dumps(line).decode(), flush=True)
    return line


def scoped_url(url: str, name: str) -> str:
    """A database for one bench: ``name``.db beside the SQLite file, or schema ``name``."""
    resolved = make_url(resolve_url(url))
    if resolved.get_backend_name() == "sqlite":
        folder = Path(resolved.database or "bench.db").resolve().parent
        return f"sqlite:///{folder / (name + '.db')}"
    return resolved.update_query_dict({"options": f"-csearch_path={name}"}).render_as_string(
        hide_password=False
    )


def drop(url: str, name: str) -> None:
    """Remove the database ``scoped_url(url, name)`` names."""
    resolved = make_url(resolve_url(url))
    if resolved.get_backend_name() == "sqlite":
        folder = Path(resolved.database or "bench.db").resolve().parent
        for suffix in (".db", ".db-wal", ".db-shm"):
            (folder / (name + suffix)).unlink(missing_ok=True)
        return
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
    engine.dispose()


def create(url: str, name: str, *, migrated: bool = True) -> str:
    """A fresh, empty database called ``name`` (migrated unless told otherwise); its URL."""
    drop(url, name)
    if backend(url) == "postgresql":
        engine = make_engine(url)
        with engine.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{name}"'))
        engine.dispose()
    scoped = scoped_url(url, name)
    if migrated:
        engine = make_engine(scoped)
        migrate.upgrade(engine)
        engine.dispose()
    return scoped


@contextmanager
def scratch(url: str, prefix: str) -> Iterator[str]:
    """A fresh migrated database for the duration of a bench, dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    scoped = create(url, name)
    try:
        yield scoped
    finally:
        drop(url, name)


def timed(fn: Callable[[], object]) -> float:
    """Seconds one call of ``fn`` takes."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def best_of(fn: Callable[[], object], repeat: int = 5) -> float:
    """The median of ``repeat`` timings of ``fn`` (after one warm-up call)."""
    fn()
    return statistics.median(timed(fn) for _ in range(repeat))

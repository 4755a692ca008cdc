"""Benchmarks, run by hand; each prints one JSON line per figure.

    python -m bench ingest-corpus --db sqlite:////tmp/bench.db --workers 2
    python -m bench ingest-corpus --db postgresql://postgres@127.0.0.1/test --workers 2

``ingest-corpus`` ingests the pydicom and pydicom-data test files into a fresh database and
compares with the baseline measured in the same run: the same files parsed and converted by
``repository.ingest.read_file`` in the same number of processes, with no database.
"""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import click
import orjson
import pydicom
import sqlalchemy as sa
from sqlalchemy.engine import make_url

import repository
from repository import migrate
from repository.config import resolve_url
from repository.engine import make_engine
from repository.ingest import ingest, iter_files, read_file


def _corpus() -> list[Path]:
    folders = [Path(pydicom.__file__).parent / "data" / "test_files"]
    try:
        import data_store  # pydicom-data

        folders.append(Path(data_store.__file__).parent / "data")
    except ImportError:
        pass
    return list(iter_files(folders))


def _parse(path: Path) -> int:
    try:
        return len(orjson.dumps(read_file(path).metadata))
    except repository.InvalidInputError:
        return 0


def _fresh(url: str) -> tuple[str, str | None]:
    """A fresh database: a new SQLite file, or a new schema on PostgreSQL."""
    resolved = make_url(resolve_url(url))
    if resolved.get_backend_name() == "sqlite":
        Path(resolved.database or "").unlink(missing_ok=True)
        return url, None
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()
    scoped = resolved.update_query_dict({"options": f"-csearch_path={schema}"})
    return scoped.render_as_string(hide_password=False), schema


@click.group()
def main() -> None:
    """dicom-repo benchmarks."""


@main.command("ingest-corpus")
@click.option("--db", "url", required=True, help="Database URL to benchmark against.")
@click.option("--workers", default=2, show_default=True, help="Parsing processes.")
def ingest_corpus(url: str, workers: int) -> None:
    """File ingest of the bundled test corpus vs parsing alone."""
    files = _corpus()
    start = time.perf_counter()
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(_parse, files, chunksize=16))
    baseline = time.perf_counter() - start

    scoped, schema = _fresh(url)
    engine = make_engine(scoped)
    migrate.upgrade(engine)
    with repository.connect(scoped) as store:
        start = time.perf_counter()
        report = ingest(store, files, workers=workers)
        took = time.perf_counter() - start
    if schema:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    engine.dispose()
    print(orjson.dumps({
        "bench": "ingest-corpus", "backend": engine.dialect.name, "files": len(files),
        "ingested": report.ingested, "value": round(len(files) / took, 1), "unit": "files/s",
        "baseline": round(len(files) / baseline, 1), "ratio": round(baseline / took, 3),
    }).decode())  # fmt: skip


if __name__ == "__main__":
    main()

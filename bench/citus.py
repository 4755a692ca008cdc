"""Plain PostgreSQL vs Citus, one run, the same data and the same code on both.

    python -m bench citus --pg postgresql://postgres@127.0.0.1/test \\
        --citus postgresql://postgres@127.0.0.1:9700/test [--files 20000] [--instances 100000]

Each figure is measured on a fresh schema of the plain server (the baseline) and on a fresh,
distributed schema of the Citus coordinator (``dicom-repo db distribute``, 32 shards per table
unless ``--shards``); the ratio is Citus's time over plain PostgreSQL's (above 1: Citus slower).
Figures: ``ingest`` (``dicom-repo ingest --workers 2`` of ``--files`` generated files),
``add-instances`` (``--instances`` synthetic instances, 500 per call), then on that database:
``get-study`` (p50 of 50 studies, routed to one shard), QIDO-RS ``qido-patient`` (PatientID, a
filter on a non-distribution column: every shard) and ``qido-date`` (a StudyDate month range,
every shard), p50 of 30 requests each, in process through the ASGI app, and ``feed`` (the whole
change log read 1000 changes a page, as a follower catching up).
"""

from __future__ import annotations

import datetime as dt
import random
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
import sqlalchemy as sa
from starlette.testclient import TestClient

import repository
from repository import citus
from repository.engine import make_engine
from repository.normalize import NormalizedInstance, instance_from_metadata
from repository.web.app import create_app

from .common import create, drop, emit, timed
from .corpus import instance_dicts
from .files import _cli_ingest, corpus_files

BATCH = 500
BASE_DATE = dt.date(2024, 1, 1)


@contextmanager
def fresh(url: str, name: str, shards: int | None) -> Iterator[str]:
    """A fresh migrated schema ``name``; distributed when ``url`` is a Citus coordinator."""
    scoped = create(url, name)
    engine = make_engine(scoped)
    try:
        with engine.begin() as conn:
            if citus.has_citus(conn):
                citus.distribute(conn, shards)
        engine.dispose()
        yield scoped
    finally:
        engine.dispose()
        drop(url, name)


def instances(total: int) -> list[NormalizedInstance]:
    """The synthetic corpus, each study with a patient (``BENCH<n % 100>``) and a date (one
    study a day from 2024-01-01), so that QIDO searches select a few studies of many."""
    out = []
    numbers: dict[str, int] = {}
    for md in instance_dicts(total, seed=5):
        n = numbers.setdefault(md["StudyInstanceUID"], len(numbers))
        md["PatientID"] = f"BENCH{n % 100}"
        md["StudyDate"] = (BASE_DATE + dt.timedelta(days=n)).strftime("%Y%m%d")
        out.append(instance_from_metadata(md))
    return out


def p50(fn: Callable[[int], object], rounds: int) -> float:
    """Median seconds of ``fn(i)`` for i in range(rounds), after one warm-up call."""
    fn(0)
    times = []
    for i in range(rounds):
        start = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def ingest(url: str, folder: Path, shards: int | None) -> float:
    with fresh(url, "bench_citus_ingest", shards) as scoped:
        return timed(lambda: _cli_ingest(scoped, folder, 2))


def reads(url: str, corpus: list[NormalizedInstance], shards: int | None) -> dict[str, float]:
    """add-instances of ``corpus``, then the read figures on that database."""
    studies = sorted({i.study_instance_uid for i in corpus})
    picked = random.Random(1).sample(studies, min(50, len(studies)))
    out: dict[str, float] = {}
    with fresh(url, "bench_citus_reads", shards) as scoped:
        with repository.connect(scoped) as store:
            out["add-instances"] = timed(
                lambda: [store.add_instances(corpus[s : s + BATCH])
                         for s in range(0, len(corpus), BATCH)]
            )  # fmt: skip
            engine = make_engine(scoped)
            with engine.begin() as conn:
                conn.execute(sa.text("ANALYZE"))
            engine.dispose()
            out["get-study"] = p50(lambda i: store.get_study(picked[i % len(picked)]), 50)
            out["feed"] = timed(lambda: _read_feed(store))
        out |= _qido(scoped)
    return out


def _read_feed(store: repository.Store) -> int:
    seen, last = 0, 0
    while page := store.changes(since=last, limit=1000):
        seen += len(page)
        last = page[-1].seq
    return seen


def _qido(scoped: str) -> dict[str, float]:
    with TestClient(create_app(url=scoped)) as client:

        def get(query: str) -> Any:
            answer = client.get(f"/dicom-web/studies?{query}")
            assert answer.status_code in (200, 204), answer.text
            return answer

        def month(i: int) -> str:
            start = BASE_DATE + dt.timedelta(days=30 * (i % 10))
            end = start + dt.timedelta(days=29)
            return f"StudyDate={start:%Y%m%d}-{end:%Y%m%d}"

        return {
            "qido-patient": p50(lambda i: get(f"PatientID=BENCH{i % 100}"), 30),
            "qido-date": p50(lambda i: get(month(i)), 30),
        }


@click.command("citus")
@click.option("--pg", "pg_url", required=True, help="Plain PostgreSQL URL (the baseline).")
@click.option("--citus", "citus_url", required=True, help="Citus coordinator URL.")
@click.option("--files", default=20_000, show_default=True, help="Files to ingest.")
@click.option("--instances", "size", default=100_000, show_default=True)
@click.option("--shards", type=int, default=None, help="Shards per table (default: 32).")
def citus_cmd(pg_url: str, citus_url: str, files: int, size: int, shards: int | None) -> None:
    """Plain PostgreSQL vs Citus: ingest, add_instances, get_study, QIDO, the feed."""
    folder = corpus_files(files)[0].parent
    plain_ingest = ingest(pg_url, folder, None)
    citus_ingest = ingest(citus_url, folder, shards)
    emit("citus-ingest", citus_url, files / citus_ingest, "files/s", files / plain_ingest,
         citus_ingest / plain_ingest, files=files, workers=2)  # fmt: skip
    corpus = instances(size)
    plain, dist = reads(pg_url, corpus, None), reads(citus_url, corpus, shards)
    emit("citus-add-instances", citus_url, size / dist["add-instances"], "instances/s",
         size / plain["add-instances"], dist["add-instances"] / plain["add-instances"],
         instances=size, batch=BATCH)  # fmt: skip
    for name in ("get-study", "qido-patient", "qido-date", "feed"):
        emit(f"citus-{name}", citus_url, dist[name] * 1000, "ms", plain[name] * 1000,
             dist[name] / plain[name], instances=size)  # fmt: skip

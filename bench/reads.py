"""Read benches over a database of a given size: get-series, get-study, display-sets, image-id.

Each size gets one database (``bench_reads_<size>``), filled once through the store with the
3000-instance target study plus synthetic archive-shaped studies, and reused by later runs.
"""

from __future__ import annotations

import random
import sqlite3
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from itertools import chain, islice
from typing import Any

import orjson
import psycopg
import sqlalchemy as sa
from sqlalchemy.engine import make_url

import repository
from repository import Store, migrate
from repository.engine import make_engine

from .common import backend, best_of, create, emit, scoped_url
from .corpus import TARGET_SERIES, TARGET_STUDY, normalized_instances, target_study

FILL_BATCH = 5000


def _count(url: str) -> int:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT count(*) FROM instance")).scalar_one())
    except sa.exc.DBAPIError:
        return -1
    finally:
        engine.dispose()


def prepare(url: str, size: int) -> str:
    """The URL of a database holding ``size`` instances, the target study among them."""
    name = f"bench_reads_{size}"
    scoped = scoped_url(url, name)
    if _count(scoped) == size:
        engine = make_engine(scoped)
        migrate.upgrade(engine)  # filled by an older version: migrations may add tables
        engine.dispose()
        _analyze(scoped)
        return scoped
    create(url, name)
    instances = chain(target_study(), normalized_instances(size - 3000, seed=1))
    start = time.perf_counter()
    done = 0
    with repository.connect(scoped) as store:
        while batch := list(islice(instances, FILL_BATCH)):
            store.add_instances(batch)
            done += len(batch)
            rate = done / (time.perf_counter() - start)
            print(f"\rfilling {name}: {done}/{size} ({rate:.0f}/s)", end="", file=sys.stderr)
    print(file=sys.stderr)
    _analyze(scoped)
    return scoped


def _analyze(url: str) -> None:
    """Planner statistics, as autovacuum would gather them on a server (it may be off here)."""
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("ANALYZE"))
    engine.dispose()


@contextmanager
def _raw(url: str) -> Iterator[Callable[[str, tuple[Any, ...]], list[Any]]]:
    """A raw driver connection: ``query(sql, params) -> rows`` (``%s`` placeholders)."""
    if backend(url) == "postgresql":
        dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(dsn, autocommit=True) as pg:
            yield lambda sql, params: pg.execute(sql, params).fetchall()
    else:
        lite = sqlite3.connect(make_url(url).database or "")
        try:
            yield lambda sql, params: lite.execute(
                sql.replace("%s", "?").replace("::text", ""), params
            ).fetchall()
        finally:
            lite.close()


SERIES_SQL = (
    "SELECT i.metadata::text FROM instance i JOIN series s ON s.id = i.series_id "
    "WHERE s.series_instance_uid = %s"
)
STUDY_SQL = (
    "SELECT i.metadata::text FROM instance i JOIN series s ON s.id = i.series_id "
    "JOIN series_list l ON l.id = s.series_list_id JOIN study t ON t.id = l.study_id "
    "WHERE t.study_instance_uid = %s"
)


def _decode_all(rows: list[Any]) -> int:
    """Decode every row and read one key, keeping the dicts (as a caller of a read would)."""
    decoded = [orjson.loads(raw) for (raw,) in rows]
    return sum(1 for md in decoded if md["SOPInstanceUID"])


def _store_series(store: Store) -> int:
    series = store.get_series(TARGET_STUDY, TARGET_SERIES[0])
    assert series is not None and len(series.instances) == 1000
    return sum(1 for i in series.instances if i.metadata["SOPInstanceUID"])


def _store_study(store: Store) -> int:
    study = store.get_study(TARGET_STUDY)
    assert study is not None
    return sum(1 for s in study.series for i in s.instances if i.metadata["SOPInstanceUID"])


def _reads(scoped: str) -> dict[str, float]:
    with repository.connect(scoped) as store, _raw(scoped) as query:
        return {
            "series": best_of(lambda: _store_series(store)),
            "series_raw": best_of(lambda: _decode_all(query(SERIES_SQL, (TARGET_SERIES[0],)))),
            "study": best_of(lambda: _store_study(store)),
            "study_raw": best_of(lambda: _decode_all(query(STUDY_SQL, (TARGET_STUDY,)))),
            "display_sets": best_of(lambda: store.get_display_sets(TARGET_STUDY)),
            **dict(zip(("image_id_p50", "image_id_cold"), _image_id_p50(store), strict=True)),
        }


def _image_id_p50(store: Store, lookups: int = 300) -> tuple[float, float]:
    """Median lookup time of imageIds of instances spread over the whole table: (warm, cold)."""
    with store.engine.connect() as conn:
        top = conn.execute(sa.text("SELECT max(id) FROM instance")).scalar_one()
        rng = random.Random(7)
        wanted = sorted(rng.sample(range(1, top + 1), lookups))
        image_ids = list(conn.execute(
            sa.select(sa.column("image_id")).select_from(sa.table("instance"))
            .where(sa.column("id").in_(wanted))
        ).scalars())  # fmt: skip

    def p50() -> float:
        times = []
        for image_id in image_ids:
            start = time.perf_counter()
            found = store.get_instance_from_image_id(image_id)
            times.append(time.perf_counter() - start)
            assert found is not None
        return statistics.median(times)

    cold = p50()  # first touch: pages may come from disk
    return p50(), cold


def run(url: str, small: int, big: int, only: tuple[str, ...] | None = None) -> None:
    """Print the read figures (all, or those named in ``only``) at ``small`` and ``big`` sizes."""
    at = {size: _reads(prepare(url, size)) for size in (small, big)}
    figures: list[tuple[str, float, float, dict[str, Any]]] = []
    for size, t in at.items():
        figures += [
            ("get-series", t["series"], t["series_raw"], {"instances": 1000, "database": size}),
            ("get-study", t["study"], t["study_raw"], {"instances": 3000, "database": size}),
            ("display-sets", t["display_sets"], t["study"], {"instances": 3000, "database": size}),
        ]
    s, b = at[small], at[big]
    scaled = (
        ("series", "get-series-scale"),
        ("study", "get-study-scale"),
        ("display_sets", "display-sets-scale"),
        ("image_id_p50", "image-id"),
        ("image_id_cold", "image-id-cold"),
    )
    for key, bench in scaled:
        figures.append((bench, b[key], s[key], {"small": small, "big": big}))
    for bench, value, baseline, extra in figures:
        if only is None or bench in only:
            emit(bench, url, value * 1e3, "ms", baseline * 1e3, value / baseline, **extra)

"""WADO-RS metadata of ``dicom-repo serve``: cold and warm, against the bare driver; 2 workers vs 1.

The server keeps each instance's DICOM JSON in ``instance_dicom_json`` the first time it serves
it (repository/web/metadata_cache.py), so a series' metadata is measured twice:

- cold: the first request after the series' rows were deleted (the server builds the JSON from
  the stored metadata), against the bare driver reading the same metadata and converting it with
  ``to_dicom_json`` in-process;
- warm: later requests, against the faster of two bare-driver builds of the same answer from the
  kept JSON of the series' instances (bytes from SQLite, a binary cursor on PostgreSQL), with the
  request's root put before each BulkDataURI: read at once and joined into one array
  (``baseline_whole``), or read and joined a hundred rows at a time, each part dropped once made,
  as a streaming server does (``baseline_streamed``; a server-side cursor on PostgreSQL). The
  answers are checked to be the same length, so the baseline builds what the server sends.

Timings alternate between the server and the baseline (three rounds): the machine is shared.
As wall times on a loaded machine say more about the load than about the server, the CPU time
of a warm answer is also given: ``server_cpu``, the server process's (from /proc), against
``baseline_cpu``, the streamed baseline's (PostgreSQL's own is in neither).
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import psycopg
import requests
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from repository.engine import make_engine
from repository.normalize import to_dicom_json

from .common import backend, emit
from .corpus import TARGET_SERIES, TARGET_STUDY
from .server import NO_GZIP, get_whole, serving, wait_kept

BULK_KEY = b'"BulkDataURI":"'
ROUNDS = 3

JSON_SQL = (
    "SELECT {json} FROM instance i JOIN series s ON s.id = i.series_id "
    "JOIN instance_dicom_json c ON c.instance_id = i.id WHERE s.series_instance_uid = %s"
)
"""The kept JSON of a series' instances (index order: instance number, the answer's order)."""

METADATA_SQL = (
    "SELECT i.metadata::text FROM instance i JOIN series s ON s.id = i.series_id "
    "WHERE s.series_instance_uid = %s"
)


Query = Callable[[str, tuple[Any, ...], int], Iterator[list[Any]]]
"""``query(sql, params, batch)``: the rows in lists of ``batch`` (0: one list of them all)."""


@contextmanager
def _driver(url: str) -> Iterator[Query]:
    """The bare driver (``%s`` placeholders; batches from a server-side cursor on PostgreSQL)."""
    if backend(url) == "postgresql":
        dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(dsn, autocommit=True) as pg:

            def pg_query(sql: str, params: tuple[Any, ...], batch: int) -> Iterator[list[Any]]:
                if not batch:
                    with pg.cursor(binary=True) as cur:
                        yield cur.execute(sql.format(json="c.json"), params).fetchall()
                    return
                with pg.transaction(), pg.cursor("bench", binary=True) as cur:
                    cur.itersize = batch
                    cur.execute(sql.format(json="c.json"), params)
                    while rows := cur.fetchmany(batch):
                        yield rows

            yield pg_query
        return
    import sqlite3

    lite = sqlite3.connect(make_url(url).database or "")

    def lite_query(sql: str, params: tuple[Any, ...], batch: int) -> Iterator[list[Any]]:
        sql = sql.format(json="CAST(c.json AS BLOB)").replace("%s", "?").replace("::text", "")
        cur = lite.execute(sql, params)
        if not batch:
            yield cur.fetchall()
            return
        while rows := cur.fetchmany(batch):
            yield rows

    try:
        yield lite_query
    finally:
        lite.close()


def _cached(query: Query, series: str, root: bytes, batch: int) -> int:
    """The kept JSON of ``series``' instances as the server's answer; its length in bytes.

    ``batch`` 0: read at once and joined into one answer; else read and joined ``batch`` rows
    at a time, each part dropped once made (as a server streaming it does).
    """
    size, prefix = 1, BULK_KEY + root + b"/"
    for rows in query(JSON_SQL, (series,), batch):
        pieces = [j if isinstance(j, bytes) else j.encode() for (j,) in rows]
        if not batch:
            pieces[0] = b"[" + pieces[0]
            pieces[-1] += b"]"
            return len(b",".join(pieces).replace(BULK_KEY, prefix))
        size += len(b",".join(pieces).replace(BULK_KEY, prefix)) + 1
    return size


def _converted(query: Query, series: str) -> int:
    """The stored metadata, each row converted as soon as decoded (the uncached work)."""
    (rows,) = query(METADATA_SQL, (series,), 0)
    return len(
        b"[" + b",".join(orjson.dumps(to_dicom_json(orjson.loads(t))) for (t,) in rows) + b"]"
    )


def _median(fn: Callable[[], int], repeat: int) -> tuple[float, int, float]:
    """Median time of ``fn``, what it returned, and the CPU time it took on average."""
    size = fn()
    times = []
    cpu = time.process_time()
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), size, (time.process_time() - cpu) / repeat


def raw_baseline(scoped: str, repeat: int, kind: str, root: str) -> None:
    """Print the median times and the length of the bare-driver answer: ``converted``, or
    ``cached`` read at once (``whole``) and read in batches of 100 (``streamed``)."""
    series = TARGET_SERIES[0]
    with _driver(scoped) as query:
        if kind == "converted":
            took, size, _ = _median(lambda: _converted(query, series), repeat)
            print(orjson.dumps({"time": took, "bytes": size}).decode())
            return
        whole, size, _ = _median(lambda: _cached(query, series, root.encode(), 0), repeat)
        streamed, same, cpu = _median(lambda: _cached(query, series, root.encode(), 100), repeat)
    assert same == size, (same, size)
    print(orjson.dumps({"time": min(whole, streamed), "whole": whole, "streamed": streamed,
                        "cpu": cpu, "bytes": size}).decode())  # fmt: skip


def _raw(scoped: str, repeat: int, kind: str, root: str) -> dict[str, Any]:
    """:func:`raw_baseline` in a fresh interpreter, as the server runs (in this process, the
    objects left by filling the database make every garbage collection slower)."""
    code = f"from bench.serve_metadata import raw_baseline; raw_baseline({scoped!r}, {repeat}, " \
           f"{kind!r}, {root!r})"  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return dict(orjson.loads(out.stdout))


def _forget(scoped: str, series: str) -> None:
    """Delete the kept JSON of ``series``' instances: its next request is cold."""
    engine = make_engine(scoped)
    with engine.begin() as conn:
        conn.execute(sa.text(
            "DELETE FROM instance_dicom_json WHERE instance_id IN (SELECT i.id FROM instance i "
            "JOIN series s ON s.id = i.series_id WHERE s.series_instance_uid = :uid)"
        ), {"uid": series})  # fmt: skip
    engine.dispose()


def _cpu(pid: int) -> float:
    """CPU seconds process ``pid`` has used (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _timed_get(session: requests.Session, url: str) -> tuple[float, int]:
    start = time.perf_counter()
    size = get_whole(session, url)
    return time.perf_counter() - start, size


def metadata(url: str, scoped: str, repeat: int = 5) -> None:
    """WADO-RS series metadata of the 1000-instance target series, cold and warm."""
    series = TARGET_SERIES[0]
    path = f"/studies/{TARGET_STUDY}/series/{series}/metadata"
    cold, warm, cold_raw, raws, cpu = [], [], [], [], []
    with serving(scoped) as root, requests.Session() as session:
        pid = int(session.get(f"{root}/studies?limit=1").headers["X-Dicom-Repo-Worker"])
        for _ in range(ROUNDS):
            _forget(scoped, series)
            took, size = _timed_get(session, root + path)
            cold.append(took)
            wait_kept(scoped, series, 1000)
            cold_raw.append(_raw(scoped, 1, "converted", root)["time"])
            get_whole(session, root + path)
            start = _cpu(pid)
            warm += [_timed_get(session, root + path)[0] for _ in range(repeat)]
            cpu.append((_cpu(pid) - start) / repeat)
            raws.append(_raw(scoped, repeat, "cached", root))
    if raws[-1]["bytes"] != size:
        raise AssertionError(f"the baseline built {raws[-1]['bytes']} bytes, the server {size}")
    served, baseline = statistics.median(warm), statistics.median(r["time"] for r in raws)
    first, converted = statistics.median(cold), statistics.median(cold_raw)
    emit("serve-metadata", url, served, "s", baseline, served / baseline, instances=1000,
         bytes=size, baseline_whole=round(statistics.median(r["whole"] for r in raws), 4),
         baseline_streamed=round(statistics.median(r["streamed"] for r in raws), 4),
         cold=round(first, 4), cold_baseline=round(converted, 4),
         cold_ratio=round(first / converted, 3), load=os.getloadavg()[0],
         server_cpu=round(statistics.median(cpu), 4),
         baseline_cpu=round(statistics.median(r["cpu"] for r in raws), 4),
         target="ratio <= 1.3")  # fmt: skip


WRK_RATE = re.compile(r"Requests/sec:\s*([0-9.]+)")


def _wrk(url: str, seconds: int, connections: int) -> float:
    """Requests/s ``wrk`` measured on ``url`` (``connections`` connections, 2 threads).

    Each connection is closed after its request: the workers of one server share its listening
    socket, and a few long-lived connections may all be accepted by one of them.
    """
    command = ["wrk", "-t", "2", "-c", str(connections), "-d", f"{seconds}s",
               "-H", "Connection: close", url]  # fmt: skip
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    found = WRK_RATE.search(out)
    if not found or "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk failed on {url}:\n{out}")
    return float(found.group(1))


WORKERS_BYTES = 1 << 20
"""About the metadata of a 90-instance CT series ingested from files (12 KB an instance)."""


def _workers_series(scoped: str) -> tuple[str, str, int]:
    """A series whose metadata is about :data:`WORKERS_BYTES`: study, series UID, instances.

    Larger answers measure the kernel's copying more than the server (it took as much CPU).
    """
    engine = make_engine(scoped)
    with engine.connect() as conn:
        one = conn.execute(sa.text(
            "SELECT length(CAST(metadata AS TEXT)) FROM instance ORDER BY id LIMIT 1"
        )).scalar_one()  # fmt: skip
        study, series, count = conn.execute(sa.text(
            "SELECT st.study_instance_uid, se.series_instance_uid, count(*) FROM instance i "
            "JOIN series se ON se.id = i.series_id "
            "JOIN series_list sl ON sl.id = se.series_list_id "
            "JOIN study st ON st.id = sl.study_id GROUP BY st.study_instance_uid, "
            "se.series_instance_uid ORDER BY abs(count(*) - :want), 2 LIMIT 1"
        ), {"want": max(1, round(WORKERS_BYTES / one))}).one()  # fmt: skip
    engine.dispose()
    return str(study), str(series), int(count)


def workers(url: str, scoped: str, seconds: int = 5, connections: int = 4) -> None:
    """Warm series metadata requests/s of 2 workers vs 1, load from ``wrk`` (a C client).

    Both servers run at once and are measured in turn, three times each, so that a change in
    the machine's load meanwhile weighs on both.
    """
    if shutil.which("wrk") is None:
        print("serve-workers skipped: wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return
    study, series, count = _workers_series(scoped)
    path = f"/studies/{study}/series/{series}/metadata"
    rates: dict[int, list[float]] = {1: [], 2: []}
    with serving(scoped, workers=1) as one, serving(scoped, workers=2) as two:
        size = len(requests.get(one + path, headers=NO_GZIP).content)
        wait_kept(scoped, series, count)
        roots = {1: one, 2: two}
        for root in roots.values():
            _wrk(root + path, 2, connections)
        for _ in range(ROUNDS):
            for workers_, root in roots.items():
                rates[workers_].append(_wrk(root + path, seconds, connections))
    two_rate, one_rate = statistics.mean(rates[2]), statistics.mean(rates[1])
    emit("serve-workers", url, two_rate, "req/s", one_rate, two_rate / one_rate,
         client="wrk", connections=connections, instances=count, bytes=size,
         cpus=os.cpu_count(), load=os.getloadavg()[0], target="ratio >= 1.7")  # fmt: skip

"""Many processes, one database: aggregate write throughput, and cross-process event latency.

``writers``: N processes (1, 2, 4) each add their share of the same synthetic corpus (whole
series of 100 instances per ``add_instances`` call), started together; the figure is all
instances over the wall time from the first start to the last finish. Baseline: one writer.

``event-latency``: a subscriber in another process; the writer adds one new series at a time
and notes when it sent the COMMIT; the subscriber notes when its callback ran. Figures are p50
and p95 of the difference. Baseline (PostgreSQL): the same measurement for a bare psycopg
NOTIFY (an autocommit statement) received by a bare LISTEN connection in that process, i.e. the
transport alone.
"""

from __future__ import annotations

import multiprocessing
import statistics
import threading
import time
import uuid
from typing import Any

import orjson
import psycopg
import sqlalchemy as sa
from sqlalchemy.engine import make_url

import repository
from repository.config import resolve_url

from .common import scratch

TIMEOUT = 300.0


def _series(study: int, series: int, size: int) -> list[dict[str, Any]]:
    st, se = f"1.2.826.0.1.9.{study}", f"1.2.826.0.1.9.{study}.{series}"
    return [
        {"StudyInstanceUID": st, "SeriesInstanceUID": se, "SOPInstanceUID": f"{se}.{i}",
         "SOPClassUID": "1.2.840.10008.5.1.4.1.1.2", "Modality": "CT", "PatientID": f"P{study}",
         "PatientName": {"Alphabetic": "Bench^Patient"}, "StudyDate": "20240101",
         "SeriesNumber": series, "InstanceNumber": i, "Rows": 512, "Columns": 512,
         "BitsAllocated": 16, "PixelSpacing": [0.5, 0.5], "SliceThickness": 1.0,
         "ImagePositionPatient": [0.0, 0.0, float(i)],
         "ImageOrientationPatient": [1.0, 0.0, 0.0, 0.0, 1.0, 0.0],
         "WindowCenter": 40, "WindowWidth": 400, "Manufacturer": "bench"}
        for i in range(1, size + 1)
    ]  # fmt: skip


def _writer(url: str, series: list[tuple[int, int]], size: int, barrier: Any, out: Any) -> None:
    batches = [_series(st, se, size) for st, se in series]
    with repository.connect(url) as store:
        barrier.wait(TIMEOUT)
        start = time.time()
        added = sum(store.add_instances(batch).added for batch in batches)
        out.put((start, time.time(), added))


def writers(
    url: str, counts: tuple[int, ...] = (1, 2, 4), series: int = 120, size: int = 100
) -> None:
    """Print one line per writer count: aggregate instances/s, vs one writer."""
    ctx = multiprocessing.get_context("spawn")
    keys = [(1 + n % 8, n) for n in range(series)]  # 8 studies, whole series per call
    baseline = None
    for count in counts:
        with scratch(url, "bench_writers") as scoped:
            barrier, out = ctx.Barrier(count), ctx.Queue()
            procs = [ctx.Process(target=_writer, args=(scoped, keys[i::count], size, barrier, out))
                     for i in range(count)]  # fmt: skip
            for proc in procs:
                proc.start()
            results = [out.get(timeout=TIMEOUT) for _ in procs]
            for proc in procs:
                proc.join(TIMEOUT)
        added = sum(r[2] for r in results)
        took = max(r[1] for r in results) - min(r[0] for r in results)
        value = added / took
        baseline = baseline or value
        print(orjson.dumps({
            "bench": "writers", "backend": make_url(resolve_url(url)).get_backend_name(),
            "writers": count, "instances": added, "value": round(value, 1),
            "unit": "instances/s", "baseline": round(baseline, 1),
            "ratio": round(value / baseline, 3),
        }).decode(), flush=True)  # fmt: skip


# ------------------------------------------------------------------------ event latency


def _subscriber(url: str, raw_channel: str | None, ready: Any, out: Any, expected: int) -> None:
    received: dict[str, float] = {}
    raw: dict[str, float] = {}
    done = threading.Event()

    def on_event(event: repository.Event) -> None:
        received[event.series_instance_uid or ""] = time.time()
        if len(received) >= expected:
            done.set()

    def listen_raw() -> None:
        assert raw_channel is not None
        dsn = make_url(resolve_url(url)).set(drivername="postgresql")
        with psycopg.connect(dsn.render_as_string(hide_password=False), autocommit=True) as conn:
            conn.execute(f'LISTEN "{raw_channel}"')
            ready.put("raw")
            for notify in conn.notifies():
                raw[notify.payload] = time.time()
                if len(raw) >= expected - 1:
                    return

    with repository.connect(url) as store:
        store.subscribe(repository.EVENTS.INSTANCES_ADDED, on_event)
        if raw_channel:
            threading.Thread(target=listen_raw, daemon=True).start()
        ready.put("store")
        done.wait(TIMEOUT)
        time.sleep(0.2)
        out.put((received, raw))


def _percentiles(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return statistics.median(ordered), p95


def event_latency(url: str, events: int = 200, pause: float = 0.01) -> None:
    """Print commit-to-callback p50/p95 (ms) for a subscriber in another process."""
    ctx = multiprocessing.get_context("spawn")
    with scratch(url, "bench_latency") as scoped:
        backend = make_url(resolve_url(url)).get_backend_name()
        raw_channel = f"bench_raw_{uuid.uuid4().hex[:8]}" if backend == "postgresql" else None
        ready, out = ctx.Queue(), ctx.Queue()
        proc = ctx.Process(target=_subscriber, args=(scoped, raw_channel, ready, out, events + 1))
        proc.start()
        for _ in range(2 if raw_channel else 1):
            ready.get(timeout=TIMEOUT)
        committed: dict[str, float] = {}
        sent: dict[str, float] = {}
        raw_conn = None
        if raw_channel:
            dsn = make_url(resolve_url(url)).set(drivername="postgresql")
            raw_conn = psycopg.connect(dsn.render_as_string(hide_password=False), autocommit=True)
        commit_started = [0.0]
        with repository.connect(scoped) as store:

            @sa.event.listens_for(store.engine, "commit")
            def on_commit(conn: Any) -> None:  # just before the COMMIT is sent
                commit_started[0] = time.time()

            store.add_instances(_series(1, 0, 1))  # warm-up, and proof the subscriber follows
            for n in range(1, events + 1):
                batch = _series(1, n, 1)
                store.add_instances(batch)
                committed[batch[0]["SeriesInstanceUID"]] = commit_started[0]
                if raw_conn is not None:
                    sent[str(n)] = time.time()  # autocommit: this statement is the commit
                    raw_conn.execute("SELECT pg_notify(%s, %s)", [raw_channel, str(n)])
                time.sleep(pause)
        received, raw = out.get(timeout=TIMEOUT)
        proc.join(TIMEOUT)
        if raw_conn is not None:
            raw_conn.close()
    lat = [(received[uid] - t) * 1000 for uid, t in committed.items() if uid in received]
    p50, p95 = _percentiles(lat)
    base = None
    if raw:
        base = _percentiles([(raw[k] - t) * 1000 for k, t in sent.items() if k in raw])
    print(orjson.dumps({
        "bench": "event-latency", "backend": backend, "events": len(lat),
        "value": round(p50, 2), "p95": round(p95, 2), "unit": "ms",
        "baseline": round(base[0], 2) if base else None,
        "baseline_p95": round(base[1], 2) if base else None,
        "ratio": round(p50 / base[0], 3) if base else None,
    }).decode(), flush=True)  # fmt: skip

"""A primary with hot standbys, on scratch clusters (the tests' ``tests/replication.py``):

- ``replicas-qido`` / ``replicas-metadata``: requests/s of ``dicom-repo serve`` (2 workers)
  reading from 1 and from 2 standbys (``--read-db``) vs the primary alone, same run, same data,
  load from ``wrk`` (4 connections, each closed after its request);
- ``replicas-feed``: commit-to-callback latency (p50, p99) of a subscriber whose ``--db`` is a
  standby (it polls the change log) vs one on the primary (LISTEN/NOTIFY);
- ``replicas-failover``: wall time of a 4000-file ingest over a multi-host URL whose primary is
  stopped (``-m immediate``) at a quarter and whose standby is promoted at once, vs the same
  ingest without a failover.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

import psycopg

import repository

from .common import emit
from .serve_metadata import _wrk

TESTS = Path(__file__).resolve().parent.parent / "tests"
sys.path.insert(0, str(TESTS))  # the scratch clusters and DICOM factory of the tests

from dicom_factory import ct_slice, write  # noqa: E402
from orthanc import free_port  # noqa: E402
from pydicom.uid import generate_uid  # noqa: E402
from replication import Cluster, new_cluster  # noqa: E402
from web_server import start  # noqa: E402

CLI = str(Path(sys.executable).parent / "dicom-repo")
ROUNDS, SECONDS, CONNECTIONS = 3, 5, 4


def _files(folder: Path, count: int) -> Path:
    warnings.simplefilter("ignore")  # the factory's made-up times are not valid TM values
    study, series = generate_uid(), generate_uid()
    for number in range(count):
        write(ct_slice(series, number + 1, float(number), study=study), folder)
    return folder


def _ingest(url: str, folder: Path) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DICOM_REPO_")}
    env["DICOM_REPO_RECONNECT_SECONDS"] = "60"
    started = time.perf_counter()
    subprocess.run([CLI, "--db", url, "ingest", str(folder), "--workers", "2", "-q"],
                   check=True, capture_output=True, env=env)  # fmt: skip
    return time.perf_counter() - started


def reads(cluster: Cluster, work: Path) -> None:
    """QIDO-RS and series metadata requests/s through 0, 1 and 2 standbys."""
    if shutil.which("wrk") is None:
        print("replicas reads skipped: wrk is not installed", file=sys.stderr)
        return
    second = cluster.add_standby("standby2", free_port())
    _ingest(cluster.primary, _files(work / "reads", 200))
    with repository.connect(cluster.primary) as store:
        study = store.get_study_instance_uids()[0]
        series = store.get_study(study).series_lists[0].series[0].series_instance_uid  # type: ignore[union-attr]
    setups = {0: [], 1: ["--read-db", cluster.standby],
              2: ["--read-db", cluster.standby, "--read-db", second]}  # fmt: skip
    servers = {
        n: start(cluster.primary, work / f"s{n}", workers=2, args=a) for n, a in setups.items()
    }
    paths = {"replicas-qido": "/studies?limit=101",
             "replicas-metadata": f"/studies/{study}/series/{series}/metadata"}  # fmt: skip
    try:
        for bench, path in paths.items():
            rates: dict[int, list[float]] = {n: [] for n in servers}
            for server in servers.values():
                _wrk(server.dicomweb + path, 2, CONNECTIONS)  # warm: kept JSON, pools
            for _ in range(ROUNDS):
                for n, server in servers.items():
                    rates[n].append(_wrk(server.dicomweb + path, SECONDS, CONNECTIONS))
            alone = statistics.mean(rates[0])
            for n in (1, 2):
                rate = statistics.mean(rates[n])
                emit(bench, cluster.primary, rate, "requests/s", alone, rate / alone,
                     standbys=n, rounds={str(k): v for k, v in rates.items()},
                     load=os.getloadavg()[0])  # fmt: skip
    finally:
        for server in servers.values():
            server.stop()


def _latencies(url: str, writer_url: str, events: int) -> list[float]:
    committed: dict[int, float] = {}
    seen: dict[int, float] = {}
    done = threading.Event()
    with repository.connect(url) as follower, repository.connect(writer_url) as writer:
        follower.subscribe("*", lambda e: (seen.__setitem__(e.seq, time.perf_counter()),
                                           len(seen) >= events and done.set()))  # fmt: skip
        time.sleep(1.0)
        for number in range(events):
            writer.add_instances([ct_slice(generate_uid(), number + 1, 0.0)])
            at = time.perf_counter()
            for event in writer.changes(since=max(committed, default=0), limit=10_000):
                committed.setdefault(event.seq, at)
            time.sleep(0.02)
        done.wait(30)
    return [seen[seq] - at for seq, at in committed.items() if seq in seen]


def feed(cluster: Cluster, events: int = 200) -> None:
    """Commit-to-callback latency on the standby (polling) vs on the primary (NOTIFY)."""
    standby = _latencies(cluster.standby, cluster.primary, events)
    primary = _latencies(cluster.primary, cluster.primary, events)
    for name, quantile in (("p50", 50), ("p99", 99)):
        ours = statistics.quantiles(standby, n=100)[quantile - 1] * 1000
        base = statistics.quantiles(primary, n=100)[quantile - 1] * 1000
        emit(f"replicas-feed-{name}", cluster.standby, ours, "ms", base, ours / base,
             events=len(standby), load=os.getloadavg()[0])  # fmt: skip


def _primary_instances(cluster: Cluster) -> int:
    try:
        with psycopg.connect(cluster.primary, autocommit=True, connect_timeout=2) as conn:
            row = conn.execute("SELECT count(*) FROM instance").fetchone()
    except psycopg.Error:
        return 0
    return int(row[0]) if row else 0


def failover(work: Path, count: int = 4000) -> None:
    """An ingest of ``count`` files with a failover at a quarter vs without one (fresh
    clusters). ``at_failover``: the instances committed when the primary was stopped (the
    figure counts only if it is below ``count``: the ingest was cut)."""
    folder = _files(work / "failover", count)
    quiet = new_cluster()
    try:
        baseline = _ingest(quiet.multi_host, folder)
    finally:
        quiet.close()
    cluster = new_cluster()
    try:
        took: list[float] = []
        runner = threading.Thread(target=lambda: took.append(_ingest(cluster.multi_host, folder)))
        runner.start()
        while (at := _primary_instances(cluster)) < count // 4 and runner.is_alive():
            time.sleep(0.01)
        cut = runner.is_alive()
        cluster.stop_primary()
        cluster.promote()
        runner.join()
    finally:
        cluster.close()
    emit("replicas-failover", cluster.multi_host, took[0], "s", baseline, took[0] / baseline,
         cost=round(took[0] - baseline, 2), files=count, at_failover=at, cut=cut,
         load=os.getloadavg()[0])  # fmt: skip


def run() -> None:
    """All of them, each on scratch clusters of its own."""
    work = Path(tempfile.mkdtemp(prefix="bench-replicas-"))
    cluster = new_cluster()
    try:
        feed(cluster)
        reads(cluster, work)
    finally:
        cluster.close()
    failover(work)
    shutil.rmtree(work, ignore_errors=True)

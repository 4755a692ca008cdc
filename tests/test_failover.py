"""Failover: the primary of a scratch cluster (tests/replication.py) is stopped with ``-m
immediate`` while ``dicom-repo ingest`` of 2000 files runs over a libpq multi-host URL, and the
standby is promoted with ``pg_promote()``. The ingest reconnects to the new primary, retries the
transaction that was cut and finishes with exact counts; the change log has no duplicate, every
instance is announced once, and a subscriber following the same URL gets each change once.

On Citus the primary is the coordinator (its standby made the same way), the workers stay up:
transactions cut in their two-phase commit are finished or rolled back from the new
coordinator, which has the coordinator's commit records (``pg_dist_transaction``)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from dicom_factory import ct_slice, write
from pydicom.uid import generate_uid
from replication import CitusCluster, Cluster, running_cluster

import repository
from repository import EVENTS, Event

pytestmark = pytest.mark.postgresql

CLI = str(Path(sys.executable).parent / "dicom-repo")
FILES = 2000


@pytest.fixture(params=["postgresql", pytest.param("citus", marks=pytest.mark.citus)])
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """A cluster of its own: this test destroys its primary (on Citus, its coordinator)."""
    if request.param == "citus":
        yield from running_cluster("the Citus failover test", CitusCluster)
    else:
        yield from running_cluster("the failover test")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("files")
    study, series = generate_uid(), generate_uid()
    for number in range(FILES):
        write(ct_slice(series, number + 1, float(number), study=study), folder)
    return folder


def _instances(url: str) -> int:
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=2) as conn:
            row = conn.execute("SELECT count(*) FROM instance").fetchone()
    except psycopg.Error:
        return 0
    return int(row[0]) if row else 0


def test_an_ingest_survives_a_failover_with_exact_counts(cluster: Cluster, files: Path) -> None:
    seen: list[int] = []
    with repository.connect(cluster.multi_host) as follower:

        def on_change(event: Event) -> None:
            seen.append(event.seq)

        follower.subscribe("*", on_change, since=0)
        env = {k: v for k, v in os.environ.items() if not k.startswith("DICOM_REPO_")}
        env["DICOM_REPO_RECONNECT_SECONDS"] = "60"
        command = [CLI, "--db", cluster.multi_host, "ingest", str(files), "--workers", "2", "-q"]
        ingest = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, env=env)  # fmt: skip
        deadline = time.monotonic() + 300
        while _instances(cluster.primary) < FILES // 4 and ingest.poll() is None:
            assert time.monotonic() < deadline, "the ingest never got going"
            time.sleep(0.05)
        assert ingest.poll() is None, "the ingest ended before the failover"
        cluster.stop_primary()
        before = _instances(cluster.standby)
        threading.Event().wait(0.5)
        cluster.promote()
        out, err = ingest.communicate(timeout=600)
        assert ingest.returncode == 0, err[-3000:]
        summary = out.strip().splitlines()[-1]
        found = re.match(r"(\d+) ingested, (\d+) already present, 0 skipped", summary)
        assert found, (summary, err[-2000:])
        assert int(found.group(1)) + int(found.group(2)) == FILES
        assert 0 < before < FILES  # the failover happened in the middle
        with repository.connect(cluster.multi_host) as store:
            changes = store.changes(limit=100_000)
            with store.engine.connect() as conn:
                stored = conn.exec_driver_sql("SELECT count(*) FROM instance").scalar_one()
        assert stored == FILES
        total = sum(int(e.payload.get("count", 0)) for e in changes
                    if e.kind == EVENTS.INSTANCES_ADDED)  # fmt: skip
        assert total == FILES  # every instance announced, once
        seqs = [e.seq for e in changes]
        assert seqs == sorted(set(seqs))
        deadline = time.monotonic() + 30
        while seen[-1:] != seqs[-1:] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert seen == seqs  # every change delivered once, in order, across the failover
    if isinstance(cluster, CitusCluster):  # no commit left half done on the workers
        assert cluster.prepared_on_workers() == 0

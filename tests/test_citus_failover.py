"""Coordinator failover and a worker crash on Citus: a scratch Citus cluster (tests/replication.py,
:class:`~citus_cluster.CitusCluster`: a coordinator, two workers, a synchronous streaming standby of
the coordinator made with ``pg_basebackup -R``) has its coordinator stopped with ``-m immediate``
while ``dicom-repo ingest`` of 2000 files runs over a multi-host URL, and the standby is promoted
with ``pg_promote()``; the workers stay up.

The ingest reconnects to the new coordinator, retries the transaction that was cut and finishes
with exact counts: every instance stored once, announced once in a change log without
duplicates, delivered once to a subscriber following the same URL; and no transaction cut in
its two-phase commit is left prepared on the workers (the new coordinator has the old one's
commit records, ``pg_dist_transaction``, and finishes or rolls them back).

A worker that crashes inside one of the ingest's write transactions (it holds the study's shard)
and starts again a second later costs the ingest a retry, not its run: the coordinator's error
for the lost worker connection is retried like a lost connection, with the same exact counts."""

from __future__ import annotations

import contextlib
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from citus_cluster import CitusCluster
from replication import CLI, Cluster, libpq_url, running_cluster
from test_failover import (
    FILES,
    _checked_log,
    _env,
    _instances,
    _wait,
    files,
    ingest_across_a_failover,
)

pytestmark = pytest.mark.citus

__all__ = ["files"]  # the 2000 files of one study, shared with test_failover


@pytest.fixture
def citus_cluster() -> Iterator[Cluster]:
    """A Citus cluster of its own: this test destroys its coordinator."""
    yield from running_cluster("the Citus failover test", CitusCluster)


def test_an_ingest_survives_a_coordinator_failover_with_exact_counts(
    citus_cluster: Cluster, files: Path
) -> None:
    assert isinstance(citus_cluster, CitusCluster)
    ingest_across_a_failover(citus_cluster, files, 0, 0)
    assert citus_cluster.prepared_on_workers() == 0  # no commit left half done on the workers


def _crash_the_worker_inside_a_write(cluster: CitusCluster) -> None:
    """Hold the study's instance shard locked on its worker until a write of the ingest waits
    for it, then crash that worker (and start it again a second later): the crash lands inside
    a write transaction, every time."""
    with psycopg.connect(cluster.primary, autocommit=True) as conn:
        (study,) = conn.execute("SELECT study_instance_uid FROM study").fetchone() or ("",)
        (shard,) = conn.execute(
            "SELECT shard_name FROM citus_shards WHERE table_name = 'instance'::regclass AND "
            "shardid = get_shard_id_for_distribution_column('instance', %s::text)", [study]
        ).fetchone() or ("",)  # fmt: skip
    port = cluster.worker_of(study)
    holder = psycopg.connect(libpq_url(port))
    holder.execute("SET LOCAL citus.enable_manual_changes_to_shards = on")
    holder.execute(f"LOCK TABLE {shard} IN EXCLUSIVE MODE")  # reads go on, writes wait
    with psycopg.connect(libpq_url(port), autocommit=True) as watcher:
        _wait(lambda: watcher.execute("SELECT count(*) FROM pg_stat_activity WHERE "
                                      "wait_event_type = 'Lock'").fetchone() != (0,),
              "no write of the ingest came to the locked shard", timeout=60)  # fmt: skip
    cluster.restart_worker(port, down=1.0)
    with contextlib.suppress(psycopg.Error):
        holder.close()


def test_an_ingest_survives_a_crash_and_restart_of_the_worker_holding_its_study(
    citus_cluster: Cluster, files: Path
) -> None:
    assert isinstance(citus_cluster, CitusCluster)
    command = [CLI, "--db", citus_cluster.primary, "ingest", str(files), "--workers", "2", "-q"]
    ingest = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=_env())  # fmt: skip
    _wait(lambda: _instances(citus_cluster.primary) >= FILES // 4 or ingest.poll() is not None,
          "the ingest never got going")  # fmt: skip
    assert ingest.poll() is None, "the ingest ended before the worker crashed"
    _crash_the_worker_inside_a_write(citus_cluster)
    out, err = ingest.communicate(timeout=600)
    assert ingest.returncode == 0, err[-3000:]
    found = re.match(r"(\d+) ingested, (\d+) already present, 0 skipped", out.splitlines()[-1])
    assert found and int(found.group(1)) + int(found.group(2)) == FILES, (out, err[-2000:])
    assert _instances(citus_cluster.primary) == FILES
    _checked_log(citus_cluster, 0, FILES)  # every instance announced once, no seq twice
    _wait(lambda: citus_cluster.prepared_on_workers() == 0, "a commit left prepared", 90)

"""Coordinator failover on Citus: a scratch Citus cluster (tests/replication.py,
:class:`~replication.CitusCluster`: a coordinator, two workers, a synchronous streaming standby of
the coordinator made with ``pg_basebackup -R``) has its coordinator stopped with ``-m immediate``
while ``dicom-repo ingest`` of 2000 files runs over a multi-host URL, and the standby is promoted
with ``pg_promote()``; the workers stay up.

The ingest reconnects to the new coordinator, retries the transaction that was cut and finishes
with exact counts: every instance stored once, announced once in a change log without
duplicates, delivered once to a subscriber following the same URL; and no transaction cut in
its two-phase commit is left prepared on the workers (the new coordinator has the old one's
commit records, ``pg_dist_transaction``, and finishes or rolls them back)."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from replication import CLI, CitusCluster, Cluster, running_cluster
from test_failover import (
    FILES,
    _checked_log,
    _delivered,
    _env,
    _failover,
    _following,
    _instances,
    _wait,
    files,
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
    cluster = citus_cluster
    assert isinstance(cluster, CitusCluster)
    with _following(cluster, 0) as seen:
        command = [CLI, "--db", cluster.multi_host, "ingest", str(files), "--workers", "2", "-q"]
        ingest = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, env=_env())  # fmt: skip
        _wait(lambda: _instances(cluster.primary) >= FILES // 4
              or ingest.poll() is not None, "the ingest never got going")  # fmt: skip
        assert ingest.poll() is None, "the ingest ended before the failover"
        held = _failover(cluster)
        out, err = ingest.communicate(timeout=600)
        assert ingest.returncode == 0, err[-3000:]
        summary = out.strip().splitlines()[-1]
        found = re.match(r"(\d+) ingested, (\d+) already present, 0 skipped", summary)
        assert found, (summary, err[-2000:])
        assert int(found.group(1)) + int(found.group(2)) == FILES
        assert 0 < held < FILES  # the failover happened in the middle
        assert _instances(cluster.standby) == FILES  # the promoted standby, now the coordinator
        _delivered(seen, _checked_log(cluster, 0, FILES))
    assert cluster.prepared_on_workers() == 0  # no commit left half done on the workers

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

from collections.abc import Iterator
from pathlib import Path

import pytest
from replication import CitusCluster, Cluster, running_cluster
from test_failover import files, ingest_across_a_failover

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

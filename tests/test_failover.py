"""Failover: the primary of a scratch cluster (tests/replication.py) is stopped with ``-m
immediate`` while the repository writes to it over a libpq multi-host URL
(``target_session_attrs=read-write``), and the standby is promoted with ``pg_promote()``.

``dicom-repo ingest`` of 2000 files, ``dicom-repo pull`` from a DICOMweb server, and STOW-RS
requests to ``dicom-repo serve`` reconnect to the new primary, retry the transaction that was cut
and finish with exact counts: every instance stored once, announced once in a change log without
duplicates, and delivered once to a subscriber following the same URL. The server's workers
answer 503 with Retry-After while there is no primary, and serve reads and writes again after
the promotion without a restart. A STOW-RS whose commit went through but whose answer from the
database was lost keeps its file.

The tests share one cluster: after a test's failover the promoted standby is the primary, and a
new standby is made from it (``Cluster.replace_primary``).
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
import requests
from dicom_factory import ct_slice, write
from dicomweb_bodies import multipart, part10
from pydicom.uid import generate_uid
from replication import CLI, Cluster, replay_paused, running_cluster
from web_server import WebServer, start

import repository
from repository import EVENTS, Event

pytestmark = pytest.mark.postgresql

FILES = 2000
PULL_SERIES, PULL_PER_SERIES = 150, 3
STOW_CLIENTS = 3
STOW_EACH_SIDE = 30
"""STOW-RS requests answered 200 before the failover, and again after the promotion."""


@pytest.fixture(scope="module")
def shared_cluster() -> Iterator[Cluster]:
    """The module's cluster (its primary is destroyed by each test)."""
    yield from running_cluster("the failover tests")


@pytest.fixture
def cluster(shared_cluster: Cluster) -> Cluster:
    """The module's cluster with a running primary and a streaming standby."""
    if shared_cluster.primary_stopped:
        shared_cluster.replace_primary()
    return shared_cluster


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("files")
    study, series = generate_uid(), generate_uid()
    for number in range(FILES):
        write(ct_slice(series, number + 1, float(number), study=study), folder)
    return folder


def _env() -> dict[str, str]:
    """The environment of the commands: the reconnect window a user sets for failovers."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DICOM_REPO_")}
    return {**env, "DICOM_REPO_RECONNECT_SECONDS": "60"}


def _instances(url: str) -> int:
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=2) as conn:
            row = conn.execute("SELECT count(*) FROM instance").fetchone()
    except psycopg.Error:
        return 0
    return int(row[0]) if row else 0


def _newest_seq(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT coalesce(max(seq), 0) FROM change").fetchone()
    return int(row[0]) if row else 0


def _wait(done: Callable[[], bool], what: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def _failover(cluster: Cluster) -> int:
    """Stop the primary as a crash would, promote the standby 0.5 s later; the instances the
    standby held when the primary stopped."""
    cluster.stop_primary()
    held = _instances(cluster.standby)
    threading.Event().wait(0.5)
    cluster.promote()
    return held


@contextmanager
def _following(cluster: Cluster, since: int) -> Iterator[list[int]]:
    """The seqs a subscriber on the multi-host URL is handed (from ``since``), as they come."""
    seen: list[int] = []
    with repository.connect(cluster.multi_host) as follower:

        def on_change(event: Event) -> None:
            seen.append(event.seq)

        follower.subscribe("*", on_change, since=since)
        yield seen


def _checked_log(cluster: Cluster, since: int, instances: int) -> list[Event]:
    """The change log after ``since``, checked: no seq twice, in order, and ``instances``
    announced (every instance stored once, announced once); its INSTANCES_ADDED events."""
    with repository.connect(cluster.multi_host) as store:
        changes = store.changes(since=since, limit=100_000)
    seqs = [e.seq for e in changes]
    assert seqs == sorted(set(seqs))
    added = [e for e in changes if e.kind == EVENTS.INSTANCES_ADDED]
    assert sum(int(e.payload["count"]) for e in added) == instances
    return changes


def _delivered(seen: list[int], changes: list[Event]) -> None:
    """The subscriber got every change once, in order, across the failover."""
    seqs = [e.seq for e in changes]
    _wait(lambda: seen[-1:] == seqs[-1:], "the subscriber fell behind", timeout=30)
    assert seen == seqs


def ingest_across_a_failover(cluster: Cluster, files: Path, since: int, before: int) -> None:
    """``dicom-repo ingest`` of ``files`` over the multi-host URL, the primary failed over at a
    quarter: exact counts, every change once in the log and delivered once to a subscriber
    that followed from ``since`` (``before``: the instances stored already)."""
    with _following(cluster, since) as seen:
        command = [CLI, "--db", cluster.multi_host, "ingest", str(files), "--workers", "2", "-q"]
        ingest = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, env=_env())  # fmt: skip
        _wait(lambda: _instances(cluster.primary) >= before + FILES // 4
              or ingest.poll() is not None, "the ingest never got going")  # fmt: skip
        assert ingest.poll() is None, "the ingest ended before the failover"
        held = _failover(cluster)
        out, err = ingest.communicate(timeout=600)
        assert ingest.returncode == 0, err[-3000:]
        summary = out.strip().splitlines()[-1]
        found = re.match(r"(\d+) ingested, (\d+) already present, 0 skipped", summary)
        assert found, (summary, err[-2000:])
        assert int(found.group(1)) + int(found.group(2)) == FILES
        assert before < held < before + FILES  # the failover happened in the middle
        assert _instances(cluster.standby) == before + FILES  # the promoted standby
        _delivered(seen, _checked_log(cluster, since, FILES))


def test_an_ingest_survives_a_failover_with_exact_counts(cluster: Cluster, files: Path) -> None:
    ingest_across_a_failover(cluster, files, _newest_seq(cluster.primary),
                             _instances(cluster.primary))  # fmt: skip


# --------------------------------------------------------------------------- pull


@pytest.fixture
def source(tmp_path: Path) -> Iterator[tuple[WebServer, str]]:
    """A DICOMweb server (``dicom-repo serve`` on SQLite) holding one study of
    :data:`PULL_SERIES` series; the study's UID."""
    folder, study = tmp_path / "source-files", generate_uid()
    for _ in range(PULL_SERIES):
        series = generate_uid()
        for number in range(PULL_PER_SERIES):
            write(ct_slice(series, number + 1, float(number), study=study), folder)
    url = f"sqlite:///{tmp_path / 'source.db'}"
    done = subprocess.run([CLI, "--db", url, "ingest", str(folder), "-q"], env=_env(),
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    server = start(url, tmp_path / "source", workers=1)
    try:
        yield server, study
    finally:
        server.stop()


def test_a_pull_survives_a_failover_with_exact_counts(
    cluster: Cluster, source: tuple[WebServer, str]
) -> None:
    server, study = source
    total = PULL_SERIES * PULL_PER_SERIES
    since, before = _newest_seq(cluster.primary), _instances(cluster.primary)
    with _following(cluster, since) as seen:
        command = [CLI, "--db", cluster.multi_host, "pull", server.dicomweb, "--study", study,
                   "-q"]  # fmt: skip
        pull = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=_env())  # fmt: skip
        _wait(lambda: _instances(cluster.primary) >= before + total // 4
              or pull.poll() is not None, "the pull never got going")  # fmt: skip
        assert pull.poll() is None, "the pull ended before the failover"
        held = _failover(cluster)
        out, err = pull.communicate(timeout=300)
        assert pull.returncode == 0, err[-3000:]
        found = re.match(r"1 studies, (\d+) series from .*: (\d+) instances added, (\d+) already "
                         r"present", out.strip().splitlines()[-1])  # fmt: skip
        assert found, (out, err[-2000:])
        assert int(found.group(1)) == PULL_SERIES
        assert int(found.group(2)) + int(found.group(3)) == total
        assert before < held < before + total  # the failover happened in the middle
        assert _instances(cluster.standby) == before + total
        changes = _checked_log(cluster, since, total)
        per_series = Counter(
            e.series_instance_uid for e in changes if e.kind == EVENTS.INSTANCES_ADDED
        )
        assert len(per_series) == PULL_SERIES and set(per_series.values()) == {1}
        _delivered(seen, changes)


# --------------------------------------------------------------------------- STOW-RS


def _stow_body(study: str, series: str, number: int) -> tuple[str, bytes, str]:
    """A new instance's SOP Instance UID, and a STOW-RS body and Content-Type sending it."""
    ds = ct_slice(series, number, float(number), study=study)
    body, kind = multipart([({"Content-Type": "application/dicom"}, part10(ds))],
                           "application/dicom")  # fmt: skip
    return ds.SOPInstanceUID, body, kind


def _stow_client(
    root: str, study: str, stop: threading.Event, answers: list[tuple[str, int]]
) -> None:
    """Store new instances one request each until ``stop``; a 503 (which must say Retry-After)
    is sent again until it is answered otherwise. Each answer goes to ``answers``."""
    series, number = generate_uid(), 0
    with requests.Session() as session:
        while not stop.is_set():
            number += 1
            sop, body, kind = _stow_body(study, series, number)
            while True:
                answer = session.post(f"{root}/studies", data=body, timeout=60,
                                      headers={"Content-Type": kind})  # fmt: skip
                answers.append((sop, answer.status_code))
                if answer.status_code != 503:
                    break
                assert "Retry-After" in answer.headers
                time.sleep(0.1)  # sooner than Retry-After asks: the test is bounded


def _qido_client(root: str, study: str, stop: threading.Event, statuses: list[int]) -> None:
    """Search the study's instances until ``stop`` (a 503 must say Retry-After); each answer's
    status goes to ``statuses``."""
    with requests.Session() as session:
        while not stop.is_set():
            answer = session.get(f"{root}/studies/{study}/instances", timeout=60)
            statuses.append(answer.status_code)
            assert answer.status_code != 503 or "Retry-After" in answer.headers
            time.sleep(0.02)


def _stored(answers: list[tuple[str, int]]) -> int:
    return sum(status == 200 for _, status in answers)


def test_stow_rs_survives_a_failover_and_the_workers_serve_again(
    cluster: Cluster, tmp_path: Path
) -> None:
    since, before = _newest_seq(cluster.primary), _instances(cluster.primary)
    storage, study, stop = tmp_path / "storage", generate_uid(), threading.Event()
    server = start(cluster.multi_host, tmp_path / "s", workers=2, args=["--storage", str(storage)])
    answers: list[tuple[str, int]] = []
    reads: list[int] = []
    try:
        with ThreadPoolExecutor(STOW_CLIENTS + 1) as pool:
            clients = [pool.submit(_stow_client, server.dicomweb, study, stop, answers)
                       for _ in range(STOW_CLIENTS)]  # fmt: skip
            clients.append(pool.submit(_qido_client, server.dicomweb, study, stop, reads))
            try:
                _wait(lambda: _stored(answers) >= STOW_EACH_SIDE, "STOW-RS never got going", 60)
                _failover(cluster)
                promoted = _stored(answers)
                _wait(lambda: _stored(answers) >= promoted + STOW_EACH_SIDE,
                      "STOW-RS did not come back after the promotion", 60)  # fmt: skip
            finally:
                stop.set()
            for client in clients:
                client.result()
        sops = {sop for sop, _ in answers}
        assert {status for _, status in answers} <= {200, 503}
        assert set(reads) <= {200, 204, 503} and reads[-1] == 200  # reads meanwhile: no 500
        assert Counter(sop for sop, status in answers if status == 200) == Counter(sops)
        assert _instances(cluster.standby) == before + len(sops)  # the promoted standby: once each
        changes = _checked_log(cluster, since, len(sops))
        added = [e for e in changes if e.kind == EVENTS.INSTANCES_ADDED]
        assert len(added) == len(sops)  # one change per instance stored, none twice
        assert {
            p.stem.rsplit("-", 1)[0] for p in (storage / study).rglob("*.dcm")
        } == sops  # every file kept
        assert not [p for p in (storage / ".incoming").rglob("*") if p.is_file()]
        _serves_again(server, study, sops)
    finally:
        server.stop()


def _serves_again(server: WebServer, study: str, sops: set[str]) -> None:
    """The same server process (no restart) answers reads and writes, on each new
    connection (the requests are spread over its workers)."""
    assert server.process.poll() is None
    sops = set(sops)
    for number in range(8):
        found = requests.get(f"{server.dicomweb}/studies/{study}/instances", timeout=30,
                             params={"limit": 1000})  # fmt: skip
        assert found.status_code == 200
        assert {i["00080018"]["Value"][0] for i in found.json()} == sops
        metadata = requests.get(f"{server.dicomweb}/studies/{study}/metadata", timeout=30)
        assert metadata.status_code == 200 and len(metadata.json()) == len(sops)
        sop, body, kind = _stow_body(study, generate_uid(), number + 1)
        stored = requests.post(f"{server.dicomweb}/studies", data=body, timeout=30,
                               headers={"Content-Type": kind})  # fmt: skip
        assert stored.status_code == 200, stored.text
        sops.add(sop)


def test_a_stow_rs_whose_commit_was_cut_after_it_went_through_keeps_its_file(
    cluster: Cluster, tmp_path: Path
) -> None:
    # The commit waits for the paused standby (remote_apply, the server has a --read-db): the
    # backend is terminated then, as a primary crashing after its commit reached the standby
    # would cut it. The commit went through; the server saw a lost connection, and its retry
    # finds the instance stored.
    storage, study = tmp_path / "storage", generate_uid()
    args = ["--read-db", cluster.standby, "--storage", str(storage)]
    server = start(cluster.primary, tmp_path / "s", workers=1, args=args)
    sop, body, kind = _stow_body(study, generate_uid(), 1)
    try:
        with ThreadPoolExecutor(1) as pool:
            with replay_paused(cluster):
                answer = pool.submit(requests.post, f"{server.dicomweb}/studies", data=body,
                                     headers={"Content-Type": kind}, timeout=60)  # fmt: skip
                _wait(lambda: _cut_commit(cluster), "no commit waited for the standby", 30)
            assert answer.result().status_code == 200, answer.result().text
        url = f"{server.dicomweb}/studies/{study}/series"
        series = requests.get(url, timeout=30).json()[0]["0020000E"]["Value"][0]
        assert [p.stem.rsplit("-", 1)[0] for p in storage.rglob("*.dcm")] == [sop]
        retrieved = requests.get(f"{url}/{series}/instances/{sop}", timeout=30)
        assert retrieved.status_code == 200
    finally:
        server.stop()


def _cut_commit(cluster: Cluster) -> bool:
    """Terminate the backends whose commit waits for the standby; True if there was one."""
    with psycopg.connect(cluster.primary, autocommit=True) as conn:
        cut = conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                           "WHERE wait_event = 'SyncRep'").fetchall()  # fmt: skip
    return bool(cut)

"""PostgreSQL connections terminated (``pg_terminate_backend``) under a running ``dicom-repo
ingest``: the command finishes by retry with exact counts; when the database stays out of reach,
it says what was committed and what was not, exits non-zero, and a re-run finishes the job.

The retried ingest runs on Citus too: there the terminated backends are the coordinator's, each
caught inside a transaction that has written to the workers already."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from conftest import migrated as migrated_to_head
from conftest import postgres_schema_url
from dicom_factory import ct_slice, write
from pydicom.uid import generate_uid
from sqlalchemy.engine import make_url
from test_dicomweb_pull_scripted import (
    STUDY,
    Scripted,
    instance_json,
    metadata_path,
    scripted,
    summary_json,
)

import repository

pytestmark = pytest.mark.postgresql

CLI = str(Path(sys.executable).parent / "dicom-repo")
FILES = 2000
_TERMINATE_ROLE = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}'"
__all__ = ["scripted"]  # the scripted DICOMweb server fixture, shared with test_dicomweb_pull


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("files")
    series = generate_uid()
    for number in range(FILES):
        write(ct_slice(series, number + 1, float(number)), folder)
    return folder


@pytest.fixture
def backend() -> str:
    """The server of :func:`migrated`: PostgreSQL, unless a test parametrizes it to Citus."""
    return "postgresql"


ON_CITUS_TOO = pytest.mark.parametrize(
    "backend", ["postgresql", pytest.param("citus", marks=pytest.mark.citus)]
)


@pytest.fixture
def migrated(backend: str) -> Iterator[str]:
    """An empty schema migrated to head; on Citus, distributed as well."""
    for url in postgres_schema_url(citus=backend == "citus"):
        yield migrated_to_head(url, distributed=backend == "citus")


def _as_app(url: str, name: str) -> str:
    """``url`` whose connections carry ``application_name`` (so they can be found)."""
    return (
        make_url(url)
        .update_query_dict({"application_name": name})
        .render_as_string(hide_password=False)
    )


def _counts(url: str) -> tuple[int, int, int]:
    """Stored instances, INSTANCES_ADDED total and duplicate seqs, read independently."""
    with repository.connect(url) as store:
        changes = store.changes(limit=100_000)
        announced = sum(int(e.payload.get("count", 0)) for e in changes
                        if e.kind == repository.EVENTS.INSTANCES_ADDED)  # fmt: skip
        seqs = [e.seq for e in changes]
        with store.engine.connect() as conn:
            stored = conn.exec_driver_sql("SELECT count(*) FROM instance").scalar_one()
    return stored, announced, len(seqs) - len(set(seqs))


def _prepared_on_workers(url: str) -> list[str]:
    """Citus: the prepared (two-phase) transactions each worker holds, by node."""
    with psycopg.connect(_libpq(url), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT nodeport, result FROM run_command_on_workers("
            "'SELECT count(*) FROM pg_prepared_xacts')"
        ).fetchall()
    return [f"{port}: {count}" for port, count in rows if count != "0"]


def _instances(dsn: str) -> int:
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            row = conn.execute("SELECT count(*) FROM instance").fetchone()
    except psycopg.Error:
        return 0
    return int(row[0]) if row else 0


@pytest.fixture
def terminator(migrated: str) -> Iterator[list[int]]:
    """Terminates the ``victim-*`` backends caught inside a write transaction, three rounds.

    Each round holds ``LOCK TABLE instance IN EXCLUSIVE MODE`` (reads go on, inserts wait),
    waits until a victim's insert is blocked on it, terminates every victim waiting there
    (so each kill lands inside a transaction, never on an idle pooled connection), then lets
    the writers run for a moment; yields the pids killed."""
    killed: list[int] = []
    stop = threading.Event()
    dsn = _libpq(migrated)
    waiting = (
        "SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE application_name LIKE 'victim-%' AND wait_event_type = 'Lock'"
    )

    def run() -> None:
        with psycopg.connect(dsn) as locker, psycopg.connect(dsn, autocommit=True) as killer:
            for _ in range(3):
                locker.execute("LOCK TABLE instance IN EXCLUSIVE MODE")
                while not stop.wait(0.02):
                    rows = killer.execute(waiting).fetchall()
                    killed.extend(pid for pid, done in rows if done)
                    if rows:
                        break
                locker.rollback()
                if stop.wait(0.3):
                    return

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    yield killed
    stop.set()
    thread.join(10)


@ON_CITUS_TOO
def test_ingest_finishes_by_retry_while_its_connections_are_terminated(
    backend: str, migrated: str, files: Path, terminator: list[int]
) -> None:
    url = _as_app(migrated, f"victim-{uuid.uuid4().hex[:8]}")
    command = [CLI, "--db", url, "ingest", str(files), "--workers", "2", "-q"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert terminator, "no connection was terminated: the test proved nothing"
    summary = result.stdout.strip().splitlines()[-1]
    assert summary.startswith(f"{FILES} ingested, 0 already present, 0 skipped"), summary
    retried = re.search(r"\((\d+) retried transactions\)", summary)
    assert retried and int(retried.group(1)) >= 1, summary
    assert "Traceback" not in result.stderr
    assert _counts(migrated) == (FILES, FILES, 0)
    if backend == "citus":  # no transaction of a terminated backend left half-committed
        assert _prepared_on_workers(migrated) == []
    print(f"terminated {len(terminator)} backends; {summary}")


def test_connect_runs_its_revision_check_again_when_the_connection_is_lost(migrated: str) -> None:
    name = f"victim-{uuid.uuid4().hex[:8]}"
    opened: list[repository.Store] = []
    with psycopg.connect(_libpq(migrated)) as admin:  # holds the lock until rollback
        admin.execute("LOCK TABLE alembic_version IN ACCESS EXCLUSIVE MODE")
        opener = threading.Thread(
            target=lambda: opened.append(repository.connect(_as_app(migrated, name)))
        )
        opener.start()
        waiting = (
            "SELECT pid FROM pg_stat_activity "
            "WHERE application_name = %s AND wait_event_type = 'Lock'"
        )
        with psycopg.connect(_libpq(migrated), autocommit=True) as killer:
            deadline = time.monotonic() + 30
            while not (rows := killer.execute(waiting, (name,)).fetchall()):
                assert time.monotonic() < deadline, "connect() never reached the revision check"
                time.sleep(0.02)
            killer.execute("SELECT pg_terminate_backend(%s)", (rows[0][0],))
        admin.rollback()
    opener.join(30)
    assert opened, "connect() failed instead of running its check again"
    with opened[0] as store:
        assert store.get_study_instance_uids() == []


@pytest.fixture
def login_role(migrated: str) -> Iterator[tuple[str, str]]:
    """A role that can use the test schema, and a URL that connects as it."""
    role = f"victim_{uuid.uuid4().hex[:8]}"
    dsn = _libpq(migrated)
    schema = make_url(migrated).query["options"].removeprefix("-csearch_path=")  # type: ignore[union-attr]
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE ROLE "{role}" LOGIN')
        conn.execute(f'GRANT ALL ON SCHEMA "{schema}" TO "{role}"')
        conn.execute(f'GRANT ALL ON ALL TABLES IN SCHEMA "{schema}" TO "{role}"')
        conn.execute(f'GRANT ALL ON ALL SEQUENCES IN SCHEMA "{schema}" TO "{role}"')
    yield role, make_url(migrated).set(username=role).render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(_TERMINATE_ROLE.format(role=role))
        conn.execute(f'DROP OWNED BY "{role}"')
        conn.execute(f'DROP ROLE "{role}"')


def test_ingest_that_loses_the_database_reports_what_was_not_committed_and_a_rerun_finishes(
    migrated: str, files: Path, login_role: tuple[str, str]
) -> None:
    role, url = login_role
    admin = _libpq(migrated)
    command = [CLI, "--db", url, "ingest", str(files), "--workers", "2", "-q"]
    victim = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while _instances(admin) == 0 and time.monotonic() < deadline and victim.poll() is None:
        time.sleep(0.05)
    with psycopg.connect(admin, autocommit=True) as conn:  # the database goes out of reach
        conn.execute(f'ALTER ROLE "{role}" NOLOGIN')
        conn.execute(_TERMINATE_ROLE.format(role=role))
    out, err = victim.communicate(timeout=600)
    assert victim.returncode == 1, err[-2000:]
    assert "Traceback" not in err
    summary = out.strip().splitlines()[-1]
    found = re.match(r"(\d+) ingested, 0 already present, 0 skipped, (\d+) not committed", summary)
    assert found, (summary, err[-2000:])
    committed, missing = int(found.group(1)), int(found.group(2))
    assert 0 < committed < FILES and committed + missing == FILES
    assert f"{missing} files were not committed" in err and "run the same command again" in err
    stored, announced, duplicates = _counts(migrated)
    assert (stored, announced, duplicates) == (committed, committed, 0)  # exactly what it said

    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'ALTER ROLE "{role}" LOGIN')
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert (
        rerun.stdout.strip()
        .splitlines()[-1]
        .startswith(f"{missing} ingested, {committed} already present, 0 skipped")
    )
    assert _counts(migrated) == (FILES, FILES, 0)


# ----------------------------------------------------------------------------- dicomweb pull

SERIES_COUNT, PER_SERIES = 20, 100


@pytest.fixture
def big_server(scripted: Scripted) -> Scripted:
    """The scripted server with one study of 20 series of 100 instances."""
    series = [f"{STUDY}.{n}" for n in range(1, SERIES_COUNT + 1)]
    scripted.reply(f"/dicom-web/studies/{STUDY}/series", [summary_json(s) for s in series])
    for uid in series:
        scripted.reply(
            metadata_path(uid), [instance_json(uid, n) for n in range(1, PER_SERIES + 1)]
        )
    return scripted


def test_pull_finishes_by_retry_while_its_connections_are_terminated(
    migrated: str, big_server: Scripted, terminator: list[int]
) -> None:
    url = _as_app(migrated, f"victim-{uuid.uuid4().hex[:8]}")
    result = subprocess.run([CLI, "--db", url, "pull", big_server.url, "-q"],
                            capture_output=True, text=True, timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert terminator, "no connection was terminated: the test proved nothing"
    summary = result.stdout.strip().splitlines()[-1]
    total = SERIES_COUNT * PER_SERIES
    assert f"1 studies, {SERIES_COUNT} series" in summary
    assert f"{total} instances added, 0 already present" in summary, summary
    assert _counts(migrated) == (total, total, 0)
    print(f"terminated {len(terminator)} backends; {summary}")


def test_pull_that_loses_the_database_says_what_was_committed_and_a_rerun_finishes(
    migrated: str, big_server: Scripted, login_role: tuple[str, str]
) -> None:
    role, url = login_role
    admin = _libpq(migrated)
    for n in range(1, SERIES_COUNT + 1):  # slow series: the database goes away mid-pull
        big_server.delay[metadata_path(f"{STUDY}.{n}")] = 0.3
    command = [CLI, "--db", url, "pull", big_server.url, "-q"]
    victim = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while _instances(admin) == 0 and time.monotonic() < deadline and victim.poll() is None:
        time.sleep(0.05)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'ALTER ROLE "{role}" NOLOGIN')
        conn.execute(_TERMINATE_ROLE.format(role=role))
    out, err = victim.communicate(timeout=600)
    assert victim.returncode == 1, out + err
    assert "Traceback" not in err
    found = re.search(r"before the error: 0 studies, (\d+) series from \S+: (\d+) instances", err)
    assert found, err[-2000:]
    series, committed = int(found.group(1)), int(found.group(2))
    assert 0 < series < SERIES_COUNT and committed == series * PER_SERIES
    assert "the database failed" in err and "pull again to finish" in err
    assert _counts(migrated) == (committed, committed, 0)

    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'ALTER ROLE "{role}" LOGIN')
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    total = SERIES_COUNT * PER_SERIES
    assert f"{total - committed} instances added, {committed} already present" in rerun.stdout
    assert _counts(migrated) == (total, total, 0)

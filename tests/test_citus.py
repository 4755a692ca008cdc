"""Citus: a study's rows on one shard, reads of a study routed there, one SOP Instance UID per
data source under racing writers on two shards, and a change log in commit order.

The race and the change-log tests run on every backend; the placement and routing tests on the
Citus cluster only ($DICOM_REPO_TEST_CITUS_URL, see conftest.py).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from concurrent_workers import TIMEOUT, app_url, instance, wait_until
from conftest import migrated, postgres_schema_url
from sqlalchemy import event, text

import repository
from repository import ConflictError, Store, citus
from repository.cli import main
from repository.engine import make_engine

SOP = "1.2.826.0.1.99.7.1"


def on_citus(request: pytest.FixtureRequest) -> bool:
    return bool(request.node.callspec.params.get("db_url") == "citus")


def node_of(store: Store, table: str, value: str) -> int:
    """The port of the worker holding the shard of ``table`` that ``value`` hashes to."""
    with store.engine.connect() as conn:
        return int(conn.execute(text(
            "SELECT nodeport FROM citus_shards WHERE table_name = to_regclass(:table) "
            "AND shardid = get_shard_id_for_distribution_column(to_regclass(:table), "
            "CAST(:value AS text))"
        ), {"table": table, "value": value}).scalar_one())  # fmt: skip


def two_studies(store: Store, request: pytest.FixtureRequest) -> tuple[str, str]:
    """Two study UIDs; on Citus, two whose shards live on two different workers."""
    first = "1.2.826.0.1.99.1"
    if not on_citus(request):
        return first, "1.2.826.0.1.99.2"
    home = node_of(store, "study", first)
    for n in range(2, 200):
        if node_of(store, "study", f"1.2.826.0.1.99.{n}") != home:
            return first, f"1.2.826.0.1.99.{n}"
    raise AssertionError("every candidate study hashed to one worker")


@pytest.fixture
def citus_store(store: Store, request: pytest.FixtureRequest) -> Store:
    if not on_citus(request):
        pytest.skip("Citus only (the other backends have no shards)")
    return store


# ---------------------------------------------------------------------------- without Citus


def test_without_citus_its_tests_are_skipped_loudly_and_fail_under_ci(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makeconftest((Path(__file__).parent / "conftest.py").read_text())
    pytester.makepyfile(test_store="def test_one(store):\n    assert store\n")
    monkeypatch.setenv("DICOM_REPO_TEST_CITUS_URL", "")
    monkeypatch.delenv("CI", raising=False)
    skipped = pytester.runpytest_subprocess("-m", "citus")
    skipped.assert_outcomes(skipped=1)
    skipped.stdout.fnmatch_lines(
        ["*Citus tests were SKIPPED: DICOM_REPO_TEST_CITUS_URL is not set *"]
    )
    monkeypatch.setenv("CI", "true")
    failed = pytester.runpytest_subprocess("-m", "citus")
    assert failed.ret == pytest.ExitCode.USAGE_ERROR
    failed.stderr.fnmatch_lines(["*CI is set but Citus is unavailable*"])


# ---------------------------------------------------------------------------- placement


def test_distribute_puts_a_study_on_one_shard_and_keeps_the_change_log_local(
    citus_store: Store,
) -> None:
    store = citus_store
    store.add_instances([instance("1.2.3", "1.2.3.1", f"1.2.3.1.{i}") for i in range(1, 4)])
    with store.engine.connect() as conn:
        tables = "SELECT table_name::text, citus_table_type FROM public.citus_tables"
        kinds = dict(conn.execute(text(tables)).all())
        shards = {
            table: conn.execute(
                text("SELECT get_shard_id_for_distribution_column(:t, '1.2.3')"), {"t": table}
            ).scalar_one()
            for table in citus.STUDY_TABLES
        }
        placed = conn.execute(text(
            "SELECT DISTINCT nodeport FROM citus_shards WHERE shardid = ANY(:ids)"
        ), {"ids": list(shards.values())}).scalars().all()  # fmt: skip
        assert citus.is_distributed(conn)
    by_name = {name.rsplit(".", 1)[-1]: kind for name, kind in kinds.items()}
    assert {by_name[t] for t in citus.STUDY_TABLES} == {"distributed"}
    assert by_name["sop_instance"] == "distributed"
    assert by_name["sop_class"] == "reference"
    assert "change" not in by_name and "change_compaction" not in by_name  # local, coordinator
    assert len(placed) == 1  # co-located: the study's five shards share one worker
    with store.engine.begin() as conn:
        assert citus.distribute(conn) == []  # once only


def db_command(url: str, *args: str) -> Result:
    """``dicom-repo --db URL db ARGS...``."""
    return CliRunner().invoke(main, ["--db", url, "db", *args], catch_exceptions=False)


@pytest.fixture
def undistributed() -> Iterator[str]:
    """A schema on the Citus coordinator migrated to head, not distributed yet."""
    schema = postgres_schema_url(citus=True)
    try:
        yield migrated(next(schema))
    finally:
        schema.close()  # drops it


@pytest.mark.citus
def test_db_distribute_distributes_the_schema_once(undistributed: str) -> None:
    done = db_command(undistributed, "distribute", "--shard-count", "4")
    assert done.exit_code == 0, done.output
    assert "study distributed by study_instance_uid" in done.output
    assert done.output.endswith("\ndistributed\n")
    engine = make_engine(undistributed)
    with engine.connect() as conn:
        assert citus.is_distributed(conn)
        shards = conn.execute(text(
            "SELECT shard_count FROM public.citus_tables WHERE table_name = to_regclass('study')"
        )).scalar_one()  # fmt: skip
    engine.dispose()
    assert shards == 4
    assert db_command(undistributed, "distribute").output == "already distributed\n"
    with repository.connect(undistributed) as store:
        store.add_instances([instance("1.2.3", "1.2.3.1", "1.2.3.1.1")])
        assert store.get_study("1.2.3") is not None


KEYS = """
SELECT c.conrelid::regclass::text, c.contype,
       array(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY k(n, o)
             JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.o),
       pg_get_constraintdef(c.oid)
FROM pg_constraint c WHERE c.conrelid = ANY(CAST(:tables AS regclass[]))
  AND c.contype IN ('p', 'u', 'f')
"""


def _keys(url: str) -> list[Any]:
    engine = make_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(text(KEYS), {"tables": list(citus.STUDY_TABLES)}).all()
    engine.dispose()
    return [(table, kind, tuple(columns), sql) for table, kind, columns, sql in rows]


@pytest.mark.citus
def test_db_distribute_keys_each_table_of_a_study_by_id_and_study_uid(undistributed: str) -> None:
    foreign = {row for row in _keys(undistributed) if row[1] == "f"}
    assert db_command(undistributed, "distribute").exit_code == 0
    keys = _keys(undistributed)
    primary = {table: columns for table, kind, columns, _ in keys if kind == "p"}
    for table in citus.ID_KEYED:
        assert primary[table] == ("id", "study_instance_uid"), table
        # the primary key took the unique constraint's place: one index on the pair, not two
        assert ("id", "study_instance_uid") not in [
            c for t, k, c, _ in keys if t == table and k == "u"
        ]
    assert primary["instance_dicom_json"] == ("instance_id", "study_instance_uid")
    assert len(foreign) == 4 and {row for row in keys if row[1] == "f"} == foreign


@pytest.mark.citus
def test_db_check_passes_on_a_distributed_schema_and_still_finds_real_differences(
    undistributed: str,
) -> None:
    assert db_command(undistributed, "distribute").exit_code == 0
    checked = db_command(undistributed, "check")
    assert (checked.exit_code, checked.output) == (0, "models match migrations\n")
    engine = make_engine(undistributed)
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE series ADD COLUMN not_in_the_models text"))
    engine.dispose()
    checked = db_command(undistributed, "check")
    assert checked.exit_code == 1
    assert "remove_column" in checked.output and "not_in_the_models" in checked.output


def test_db_distribute_without_citus_says_so(empty_db_url: str) -> None:
    assert db_command(empty_db_url, "upgrade").exit_code == 0
    refused = CliRunner().invoke(main, ["--db", empty_db_url, "db", "distribute"])
    assert refused.exit_code == 1
    assert "the database has no citus extension" in refused.output


def _explains(store: Store, calls: Any) -> list[str]:
    """EXPLAIN of every statement ``calls()`` runs (in order)."""
    seen: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, params: Any, *args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append((statement, params))

    event.listen(store.engine, "before_cursor_execute", record)
    try:
        calls()
    finally:
        event.remove(store.engine, "before_cursor_execute", record)
    plans = []
    with store.engine.connect() as conn:
        for statement, params in seen:
            rows = conn.exec_driver_sql("EXPLAIN " + statement, params).scalars().all()
            plans.append("\n".join(rows))
    return plans


def test_reads_of_one_study_are_routed_to_its_shard(citus_store: Store) -> None:
    store = citus_store
    for study in ("1.2.3", "1.2.4", "1.2.5"):
        store.add_instances([instance(study, f"{study}.1", f"{study}.1.{i}") for i in (1, 2)])
    plans = _explains(store, lambda: (store.get_study("1.2.4"),
                                      store.get_series("1.2.4", "1.2.4.1"),
                                      store.get_display_sets("1.2.4")))  # fmt: skip
    assert plans
    for plan in plans:
        if "Citus" in plan:  # the others read reference or local tables alone
            assert "Task Count: 1" in plan, plan


# ---------------------------------------------------------------------------- the SOP UID race


def _blocked(store: Store, app: str, on_citus: bool) -> bool:
    with store.engine.connect() as conn:
        if on_citus:
            return bool(conn.execute(text("SELECT count(*) FROM citus_lock_waits")).scalar())
        return bool(conn.execute(text(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = :app "
            "AND wait_event_type = 'Lock'"
        ), {"app": app}).scalar())  # fmt: skip


def _second_writer(url: str, study: str, outcome: dict[str, Any]) -> None:
    try:
        with repository.connect(url) as other:
            outcome["result"] = other.add_instances([instance(study, f"{study}.1", SOP)])
    except Exception as error:  # handed to the test thread
        outcome["error"] = error


@pytest.fixture
def racing(store: Store, db_url: str, request: pytest.FixtureRequest) -> Iterator[Any]:
    """Start a second writer filing SOP under the second study while the test's store holds an
    uncommitted add of it under the first; wait until the second writer waits on it."""
    first, second = two_studies(store, request)
    app = f"race-{id(store)}"
    url = app_url(db_url, app) if store.dialect == "postgresql" else db_url
    outcome: dict[str, Any] = {}
    writer = threading.Thread(target=_second_writer, args=(url, second, outcome))

    def start() -> None:
        writer.start()
        if store.dialect == "postgresql":
            wait_until(lambda: _blocked(store, app, on_citus(request)), "the second writer waits")

    yield first, second, start, outcome
    writer.join(TIMEOUT)


def test_two_writers_filing_one_sop_uid_under_two_studies_on_two_shards(
    store: Store, racing: Any
) -> None:
    first, second, start, outcome = racing
    with store.transaction():
        store.add_instances([instance(first, f"{first}.1", SOP)])
        start()
    wait_until(lambda: outcome, "the second writer ends")
    assert isinstance(outcome.get("error"), ConflictError), outcome
    assert f"already stored in study {first}" in str(outcome["error"])
    assert store.get_study(second) is None
    study = store.get_study(first)
    assert study is not None
    assert [i.sop_instance_uid for i in study.series_lists[0].series[0].instances] == [SOP]
    # another data source may hold its own copy, under another study
    assert store.add_instances([instance(second, f"{second}.1", SOP)], data_source="other").added


def test_the_second_writer_files_it_when_the_first_rolls_back(store: Store, racing: Any) -> None:
    first, second, start, outcome = racing
    with pytest.raises(RuntimeError, match="rolled back"), store.transaction():
        store.add_instances([instance(first, f"{first}.1", SOP)])
        start()
        raise RuntimeError("rolled back")
    wait_until(lambda: outcome, "the second writer ends")
    assert "error" not in outcome, outcome
    assert outcome["result"].added == 1
    assert store.get_study(first) is None
    assert store.get_study(second) is not None


# ---------------------------------------------------------------------------- the change log


def test_seq_order_is_commit_order_with_writers_on_several_shards(store: Store) -> None:
    """Four writers on four studies (spread over the shards) and a follower reading ``seq >
    last seen`` meanwhile: the follower reads every change, none skipped, in seq order."""
    url = str(store.engine.url.render_as_string(hide_password=False))
    done = threading.Event()
    errors: list[BaseException] = []

    def write(study: str) -> None:
        try:
            with repository.connect(url) as writer:
                for n in range(1, 9):
                    writer.add_instances([instance(study, f"{study}.{n}", f"{study}.{n}.1")])
        except BaseException as error:
            errors.append(error)

    def finish() -> None:
        for thread in writers:
            thread.join(TIMEOUT)
        done.set()

    writers = [threading.Thread(target=write, args=(f"1.2.7.{w}",)) for w in range(1, 5)]
    for thread in writers:
        thread.start()
    threading.Thread(target=finish).start()
    read: list[int] = []
    while True:
        finished = done.is_set()  # then one more read, after the last commit
        read += [e.seq for e in store.changes(since=read[-1] if read else 0, limit=10_000)]
        if finished:
            break
    assert not errors, errors
    every = [e.seq for e in store.changes(limit=10_000)]
    assert read == every  # nothing committed behind the follower's back
    assert every == list(range(every[0], every[0] + len(every)))  # gap-free
    assert len(every) == 4 * (1 + 8)  # STUDY_ADDED, then INSTANCES_ADDED per series

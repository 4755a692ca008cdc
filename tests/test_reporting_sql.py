"""Read-only SQL (``dicom-repo sql``, ``read_only_query``) and ``dicom-repo report`` on both
databases: writes refused with nothing changed, streaming, output formats, report parameters."""

from __future__ import annotations

import csv
import io
import json
import tracemalloc
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import text

import repository
from repository import QueryError, QueryRefusedError
from repository.cli import main
from repository.engine import make_engine
from repository.reporting import REPORTS, read_only_query

ST = "1.2.826.0.1.3680043.10.1017.1"


def run(url: str, *args: str) -> Result:
    return CliRunner().invoke(main, ["--db", url, *args], catch_exceptions=False)


def fill(url: str, n: int = 3) -> None:
    with repository.connect(url) as store:
        store.add_instances(
            [
                {
                    "StudyInstanceUID": ST,
                    "SeriesInstanceUID": f"{ST}.1",
                    "SOPInstanceUID": f"{ST}.1.{i}",
                    "Modality": "CT",
                    "PatientName": {"Alphabetic": "Doe^Jane"},
                    "StudyDate": "20240115",
                    "InstanceNumber": i,
                }
                for i in range(1, n + 1)
            ]
        )


def snapshot(url: str) -> tuple[Any, ...]:
    engine = make_engine(url)
    with engine.connect() as conn:
        counts = tuple(
            conn.execute(text(f"SELECT COUNT(*) FROM {t}")).scalar()
            for t in ("study", "series", "instance", "change", "sop_class")
        )
        version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    engine.dispose()
    return (*counts, version)


WRITES = [
    "DELETE FROM instance",
    "UPDATE study SET patient_id = 'X'",
    "INSERT INTO sop_class (uid, name) VALUES ('1.2.3', 'mine')",
    "DROP VIEW v_study",
    "CREATE TABLE mine (x INTEGER)",
    "SELECT 1; DELETE FROM instance",
]


@pytest.mark.parametrize("statement", WRITES)
def test_sql_refuses_a_write_with_a_clear_message_and_changes_nothing(
    db_url: str, statement: str
) -> None:
    fill(db_url)
    before = snapshot(db_url)
    result = run(db_url, "sql", statement)
    assert result.exit_code != 0
    assert "refused" in result.output
    assert "nothing was changed" in result.output or "nothing was run" in result.output
    assert snapshot(db_url) == before


def test_the_database_itself_refuses_a_write_in_disguise(db_url: str) -> None:
    fill(db_url)
    before = snapshot(db_url)
    engine = make_engine(db_url)
    if engine.dialect.name == "sqlite":
        disguised = ["PRAGMA user_version = 7"]
    else:
        disguised = [
            "SELECT nextval('study_id_seq')",
            "WITH d AS (DELETE FROM instance RETURNING 1) SELECT * FROM d",
        ]
    for statement in disguised:
        with (
            pytest.raises(QueryRefusedError, match="nothing was changed"),
            read_only_query(engine, statement) as result,
        ):
            list(result.rows)
    # The pooled connection writes again afterwards (query_only is reset on SQLite).
    with engine.begin() as conn:
        conn.execute(text("UPDATE study SET patient_id = 'after'"))
        if engine.dialect.name == "sqlite":
            assert conn.execute(text("PRAGMA user_version")).scalar() == 0
        else:
            assert conn.execute(text("SELECT last_value FROM study_id_seq")).scalar() == 1
    engine.dispose()
    assert snapshot(db_url) == before


def test_a_bad_query_is_a_clear_error(db_url: str) -> None:
    result = run(db_url, "sql", "SELECT nope FROM v_study")
    assert result.exit_code != 0
    assert "query failed" in result.output and "nope" in result.output
    engine = make_engine(db_url)
    with pytest.raises(QueryError), read_only_query(engine, "SELECT * FROM no_such_table") as res:
        list(res.rows)
    engine.dispose()


COUNT_TO = """WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {last})
SELECT i, 'row number ' || CAST(i AS TEXT) || ' padded to be bigger than an int' AS label
       {extra} FROM n"""


def test_a_large_result_streams_in_batches(db_url: str) -> None:
    engine = make_engine(db_url)
    # Row 150000 fails when the database computes it: rows before it arrive first only when
    # the result streams (a result loaded whole fails before the first row).
    boom = ", abs(149999 - i - 9223372036854775807) AS boom"  # overflows at i = 150000
    seen = 0
    with (
        pytest.raises(QueryError),
        read_only_query(engine, COUNT_TO.format(last=200_000, extra=boom), batch=500) as result,
    ):
        for _ in result.rows:
            seen += 1
    assert 100_000 < seen < 150_000
    # And the Python side never holds the result: 200k rows in well under their size.
    tracemalloc.start()
    with read_only_query(engine, COUNT_TO.format(last=200_000, extra=""), batch=500) as result:
        total = sum(1 for _ in result.rows)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    engine.dispose()
    assert total == 200_000
    assert peak < 5_000_000  # the rows as Python objects take over 30 MB


def test_sql_formats_csv_json_and_table(db_url: str) -> None:
    fill(db_url, 2)
    query = (
        "SELECT study_instance_uid, patient_name, study_date, number_of_instances,"
        " accession_number FROM v_study"
    )
    expected = [ST, "Doe^Jane", "2024-01-15", 2, None]
    out = run(db_url, "sql", query, "--format", "csv").output
    assert list(csv.reader(io.StringIO(out))) == [
        [
            "study_instance_uid",
            "patient_name",
            "study_date",
            "number_of_instances",
            "accession_number",
        ],
        [ST, "Doe^Jane", "2024-01-15", "2", ""],
    ]
    parsed = json.loads(run(db_url, "sql", query, "--format", "json").output)
    assert [list(row.values()) for row in parsed] == [expected]
    table = run(db_url, "sql", query).output
    assert "study_instance_uid" in table and ST in table and "2024-01-15" in table
    assert (
        json.loads(
            run(db_url, "sql", "SELECT * FROM v_study WHERE 1 = 0", "--format", "json").output
        )
        == []
    )


def test_a_statement_without_rows_gives_none_and_leaves_no_trace(db_url: str) -> None:
    fill(db_url, 1)
    sqlite = db_url.startswith("sqlite")
    setting = "PRAGMA query_only = OFF" if sqlite else "SET search_path TO nowhere"
    assert json.loads(run(db_url, "sql", setting, "--format", "json").output) == []
    engine = make_engine(db_url)  # one engine: the next query gets the same pooled connection
    with read_only_query(engine, setting) as result:
        assert (result.columns, list(result.rows)) == ([], [])
    with read_only_query(engine, "SELECT COUNT(*) FROM v_study") as result:
        assert list(result.rows) == [(1,)]
    engine.dispose()


def test_report_list_names_every_report(db_url: str) -> None:
    out = run(db_url, "report", "--list").output
    assert [line.split("\t")[0] for line in out.splitlines()] == [r.name for r in REPORTS]
    assert "value=(required)" in out


def test_report_runs_with_params_and_explains_bad_ones(db_url: str) -> None:
    fill(db_url, 3)
    out = run(db_url, "report", "patient-studies", "--param", f"patient_id={''}", "--format", "csv")
    assert out.output.splitlines()[1:] == []
    out = run(db_url, "report", "largest-studies", "--param", "limit=1", "--format", "json")
    assert [
        (r["study_instance_uid"], r["number_of_instances"]) for r in json.loads(out.output)
    ] == [(ST, 3)]
    for args, message in [
        (["report", "nope"], "no report named 'nope'"),
        (["report", "instances-by-private-tag"], "needs --param value=VALUE"),
        (["report", "largest-studies", "--param", "limit=ten"], "limit='ten' is not an int"),
        (["report", "largest-studies", "--param", "color=red"], "has no parameter color"),
        (["report", "largest-studies", "--param", "oops"], "is not KEY=VALUE"),
    ]:
        result = run(db_url, *args)
        assert result.exit_code != 0 and message in result.output, result.output


def test_sql_on_an_unmigrated_database_asks_for_an_upgrade(empty_db_url: str) -> None:
    result = run(empty_db_url, "sql", "SELECT 1")
    assert result.exit_code != 0 and "db upgrade" in result.output

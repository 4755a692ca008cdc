"""Hostile arguments to the command line, on both databases: each a clear error (exit 1, or 2
for a value click refuses) naming the problem, never a traceback, never a password printed,
and nothing written outside the database (found by fuzzing the CLI)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_fixtures import run
from click.testing import CliRunner

from repository.cli import main

pytest_plugins = ("cli_fixtures",)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["prune", "--older-than", "99999y", "--dry-run"], "days must be from 0 to 365000"),
        (["prune", "--older-than", "2147483648d", "--dry-run"], "days must be from 0 to"),
        (["prune", "--older-than", "\u0661d", "--dry-run"], "give days as N, Nd, Nw or Ny"),
        (["changes", "compact", "--keep-days", "3000000"], "days must be from 0 to 365000"),
        (["changes", "compact", "--keep-days", "inf"], "days must be from 0 to 365000"),
        (["changes", "--since", str(2**63)], "since must be a seq number (0 to"),
        (["report", "busiest-stations", "--param", "limit=" + "9" * 20], "not a 64-bit int"),
    ],
)
def test_out_of_range_numbers_are_clear_errors(db_url: str, args: list[str], says: str) -> None:
    result = run(db_url, *args)
    assert result.exit_code in (1, 2), result.output
    assert says in result.output  # (run() lets any other exception fail the test)


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("postgresql://u:S3cr3t@[::1:5432/x", "invalid database URL"),
        ("postgresql://u@127.0.0.1:1/x?password=S3cr3t&connect_timeout=1", "password=***"),
    ],
)
def test_a_bad_database_url_is_a_clear_error_without_its_password(url: str, says: str) -> None:
    result = CliRunner(env={"DICOM_REPO_RECONNECT_SECONDS": "0"}).invoke(
        main, ["--db", url, "studies"]
    )
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert says in result.output and "S3cr3t" not in result.output


def test_sql_refuses_statements_that_reach_outside_the_database(
    db_url: str, tmp_path: Path
) -> None:
    target = tmp_path / "attached.db"
    for statement in (f"ATTACH DATABASE '{target}' AS x", f"VACUUM INTO '{target}'",
                      f"COPY (SELECT 1) TO '{target}'"):  # fmt: skip
        result = run(db_url, "sql", statement)
        assert result.exit_code == 1, result.output
        assert "reaches outside the database" in result.output
    assert not target.exists()

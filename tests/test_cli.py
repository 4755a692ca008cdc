"""The ``dicom-repo`` command line on both databases: schema, ingest and their errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pydicom
import pytest
from cli_fixtures import CT, FILES, LONG_UIDS, MR, count, run, sql, tables
from click.testing import CliRunner, Result

from repository import migrate
from repository.cli import main
from repository.reading import sample_files

pytest_plugins = ("cli_fixtures",)


def test_db_upgrade_migrates_an_empty_database_and_db_current_says_up_to_date(
    empty_db_url: str,
) -> None:
    before = run(empty_db_url, "db", "current")
    assert before.exit_code == 0, before.output
    assert "current: none" in before.output and "needs `dicom-repo db upgrade`" in before.output

    upgraded = run(empty_db_url, "db", "upgrade")
    assert upgraded.exit_code == 0, upgraded.output
    assert f"database at revision {migrate.head_revision()}" in upgraded.output

    after = run(empty_db_url, "db", "current")
    assert after.exit_code == 0, after.output
    head = migrate.head_revision()
    assert f"current: {head}  head: {head}  (up to date)" in after.output
    assert {"study", "series_list", "series", "instance", "change"} <= tables(empty_db_url)


def test_db_upgrade_twice_is_harmless(empty_db_url: str) -> None:
    assert run(empty_db_url, "db", "upgrade").exit_code == 0
    again = run(empty_db_url, "db", "upgrade")
    assert again.exit_code == 0, again.output
    assert "up to date" in run(empty_db_url, "db", "current").output


def test_db_check_says_models_match_migrations(db_url: str) -> None:
    result = run(db_url, "db", "check")
    assert result.exit_code == 0, result.output
    assert "models match migrations" in result.output


def test_db_check_fails_on_a_database_that_was_never_migrated(empty_db_url: str) -> None:
    result = run(empty_db_url, "db", "check")
    assert result.exit_code == 1
    assert "differs:" in result.output
    assert "models match migrations" not in result.output


def test_db_downgrade_to_base_removes_the_tables(db_url: str) -> None:
    result = run(db_url, "db", "downgrade", "base")
    assert result.exit_code == 0, result.output
    assert "database at revision base" in result.output
    assert not tables(db_url) & {"study", "series_list", "series", "instance", "change"}
    assert "current: none" in run(db_url, "db", "current").output


@pytest.mark.postgresql
def test_reading_an_unmigrated_postgresql_database_asks_for_db_upgrade(pg_empty_url: str) -> None:
    result = run(pg_empty_url, "studies")
    assert result.exit_code == 1
    assert "db upgrade" in result.output
    assert "Traceback" not in result.output
    assert tables(pg_empty_url) == set()


UNREACHABLE = "postgresql://postgres@127.0.0.1:1/test"  # nothing listens on port 1


def run_catching(url: str, *args: str) -> Result:
    """Like :func:`run`, but an uncaught exception is recorded instead of raised."""
    return CliRunner().invoke(main, ["--db", url, *args])


def failed_cleanly(result: Result) -> bool:
    """Exit status 1 with an ``Error:`` message, not a traceback from an uncaught exception."""
    return (
        result.exit_code == 1
        and isinstance(result.exception, SystemExit)
        and "Error:" in result.output
    )


def test_reading_an_unreachable_database_fails_with_a_message() -> None:
    result = run_catching(UNREACHABLE, "studies")
    assert failed_cleanly(result), result.exception
    assert "cannot open database" in result.output and "127.0.0.1:1" in result.output


@pytest.mark.parametrize("command", [["db", "upgrade"], ["db", "current"], ["db", "check"]])
def test_db_commands_on_an_unreachable_database_fail_with_a_message(command: list[str]) -> None:
    result = run_catching(UNREACHABLE, *command)
    assert failed_cleanly(result), repr(result.exception)


def test_a_malformed_database_url_fails_with_a_message() -> None:
    result = run_catching("not-a-url", "studies")
    assert failed_cleanly(result), repr(result.exception)


# -------------------------------------------------------------------------------------- ingest


def test_ingest_then_studies_lists_every_study_uid_in_full(ingested: str) -> None:
    result = run(ingested, "studies")
    assert result.exit_code == 0, result.output
    for f in FILES:
        assert f.study in result.output.split(), f"{f.study} missing or truncated"
    assert len(LONG_UIDS.study) == 64
    assert f"{len(FILES)} studies" in result.output
    assert "CompressedSamples^CT1" in result.output


def test_studies_json_parses_and_holds_the_study_uids(ingested: str) -> None:
    result = run(ingested, "studies", "--json")
    assert result.exit_code == 0, result.output
    studies = json.loads(result.output)
    assert sorted(s["study_instance_uid"] for s in studies) == sorted(f.study for f in FILES)
    ct = next(s for s in studies if s["study_instance_uid"] == CT.study)
    assert ct["patient_name"] == CT.patient_name
    assert ct["study_date"] == "2004-01-19"
    assert ct["modalities_in_study"] == ["CT"]
    [series_list] = ct["series_lists"]
    assert series_list["data_source"] == "default"
    assert [s["series_instance_uid"] for s in series_list["series"]] == [CT.series]


def test_studies_on_an_empty_database_says_zero_studies(db_url: str) -> None:
    result = run(db_url, "studies")
    assert result.exit_code == 0, result.output
    assert "0 studies" in result.output
    assert json.loads(run(db_url, "studies", "--json").output) == []


def test_ingest_with_two_workers_ingests_every_file(db_url: str) -> None:
    result = run(db_url, "ingest", "--workers", "2", *(str(f.path) for f in FILES))
    assert result.exit_code == 0, result.output
    assert f"{len(FILES)} ingested, 0 already present, 0 skipped" in result.output
    stored = sql(db_url, "SELECT sop_instance_uid FROM instance")
    assert sorted(uid for (uid,) in stored) == sorted(f.sop for f in FILES)


def test_ingest_keep_json_keeps_each_new_instances_dicom_json(db_url: str) -> None:
    """``--keep-json`` keeps each new instance's WADO-RS DICOM JSON (``--no-keep-json``: not)."""
    half = len(FILES) // 2
    run(db_url, "ingest", "--no-keep-json", *(str(f.path) for f in FILES[:half]))
    assert count(db_url, "instance_dicom_json") == 0
    result = run(db_url, "ingest", "--keep-json", *(str(f.path) for f in FILES))
    assert result.exit_code == 0, result.output
    query = (
        "SELECT i.sop_instance_uid FROM instance_dicom_json c "
        "JOIN instance i ON i.id = c.instance_id WHERE c.json IS NOT NULL"
    )
    kept = sql(db_url, query)
    assert sorted(uid for (uid,) in kept) == sorted(f.sop for f in FILES[half:])


def test_ingesting_again_reports_already_present_and_adds_nothing(ingested: str) -> None:
    counts = {t: count(ingested, t) for t in ("study", "series", "instance", "change")}
    assert counts["instance"] == len(FILES)

    again = run(ingested, "ingest", "--workers", "1", *(str(f.path) for f in FILES))
    assert again.exit_code == 0, again.output
    assert f"0 ingested, {len(FILES)} already present, 0 skipped" in again.output
    assert {t: count(ingested, t) for t in counts} == counts


def test_ingest_of_a_folder_with_bad_files_names_each_and_keeps_the_good_ones(
    db_url: str, tmp_path: Path
) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    shutil.copy(CT.path, folder / "good_ct.dcm")
    shutil.copy(MR.path, folder / "good_mr.dcm")
    (folder / "notes.txt").write_text("these are not the images you are looking for\n")
    (folder / "cut.dcm").write_bytes(CT.path.read_bytes()[:200])

    result = run(db_url, "ingest", "--workers", "2", str(folder))

    assert result.exit_code != 0
    assert "2 ingested, 0 already present, 2 skipped" in result.output
    skipped = {line for line in result.stderr.splitlines() if line.startswith("skipped ")}
    assert len(skipped) == 2, result.stderr
    for bad in ("notes.txt", "cut.dcm"):
        [line] = [s for s in skipped if f"{folder / bad}: " in s]
        reason = line.split(f"{folder / bad}: ", 1)[1]
        assert reason.strip(), f"no reason given for {bad}"
    assert "not a DICOM file" in next(s for s in skipped if "notes.txt" in s)
    stored = {uid for (uid,) in sql(db_url, "SELECT sop_instance_uid FROM instance")}
    assert stored == {CT.sop, MR.sop}


def test_a_truncated_file_is_reported_as_truncated_not_as_missing_an_attribute(
    db_url: str, tmp_path: Path
) -> None:
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(CT.path.read_bytes()[:200])
    result = run(db_url, "ingest", "--workers", "1", str(cut))
    assert result.exit_code != 0
    assert "is missing" not in result.stderr
    assert any(word in result.stderr.lower() for word in ("truncated", "end of file", "eof"))


def test_ingest_without_paths_or_sample_is_a_usage_error(db_url: str) -> None:
    result = run(db_url, "ingest")
    assert result.exit_code == 2
    assert "give PATH... or --sample" in result.output


def test_ingest_of_a_missing_path_is_a_usage_error(db_url: str, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.dcm"
    result = run(db_url, "ingest", str(missing))
    assert result.exit_code == 2
    assert "nowhere.dcm" in result.output
    assert count(db_url, "instance") == 0


def test_ingest_sample_then_studies_lists_the_sample_studies(db_url: str) -> None:
    result = run(db_url, "ingest", "--sample", "--workers", "2", "--quiet")
    assert result.exit_code == 0, result.output
    assert "0 skipped" in result.output

    expected = {
        pydicom.dcmread(p, stop_before_pixels=True, force=True).StudyInstanceUID
        for p in sample_files()
    }
    assert len(expected) > 10
    listed = run(db_url, "studies")
    assert listed.exit_code == 0, listed.output
    words = set(listed.output.split())
    assert expected <= words
    assert f"{len(expected)} studies" in listed.output
    as_json = json.loads(run(db_url, "studies", "--json").output)
    assert {s["study_instance_uid"] for s in as_json} == expected


def test_ingest_data_source_files_instances_under_that_series_list(ingested: str) -> None:
    result = run(ingested, "ingest", "--workers", "1", "--data-source", "archive", str(CT.path))
    assert result.exit_code == 0, result.output
    assert "1 ingested, 0 already present" in result.output

    rows = sql(
        ingested,
        "SELECT sl.data_source, i.sop_instance_uid FROM instance i "
        "JOIN series s ON s.id = i.series_id JOIN series_list sl ON sl.id = s.series_list_id "
        "JOIN study st ON st.id = sl.study_id "
        f"WHERE st.study_instance_uid = '{CT.study}' ORDER BY sl.data_source",
    )
    assert rows == [("archive", CT.sop), ("default", CT.sop)]

    shown = json.loads(run(ingested, "study", CT.study, "--json").output)
    assert [sl["data_source"] for sl in shown["series_lists"]] == ["default", "archive"]
    archived = json.loads(
        run(ingested, "series", CT.study, CT.series, "--data-source", "archive", "--json").output
    )
    assert archived["data_source"] == "archive"
    assert [i["sop_instance_uid"] for i in archived["instances"]] == [CT.sop]


def test_the_database_can_be_given_in_dicom_repo_url_instead_of_db(ingested: str) -> None:
    runner = CliRunner(env={"DICOM_REPO_URL": ingested})
    result = runner.invoke(main, ["studies", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert {s["study_instance_uid"] for s in json.loads(result.output)} == {f.study for f in FILES}

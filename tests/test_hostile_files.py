"""Hostile files beside good ones: the good all land, each bad one is reported with its reason,
nothing raises, and the database stays consistent (on SQLite and PostgreSQL)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hostile_corpus import ACCEPT, EITHER, REJECT, Case, cases, good_files
from sqlalchemy import text

import repository
from repository.ingest import ingest
from repository.reading import display_name

CASES = cases()


def consistency_problems(store: repository.Store) -> list[str]:
    """What an independent look at the tables finds wrong (empty when consistent)."""
    checks = {
        "series without a series list": "SELECT count(*) FROM series s LEFT JOIN series_list l "
        "ON l.id = s.series_list_id WHERE l.id IS NULL",
        "instances without a series": "SELECT count(*) FROM instance i LEFT JOIN series s "
        "ON s.id = i.series_id WHERE s.id IS NULL",
        "series lists without a study": "SELECT count(*) FROM series_list l LEFT JOIN study t "
        "ON t.id = l.study_id WHERE t.id IS NULL",
        "studies without a STUDY_ADDED change": "SELECT count(*) FROM study t WHERE NOT EXISTS "
        "(SELECT 1 FROM change c WHERE c.kind = 'STUDY_ADDED' "
        "AND c.study_instance_uid = t.study_instance_uid)",
    }
    problems = []
    with store.engine.connect() as conn:
        for what, query in checks.items():
            if conn.execute(text(query)).scalar_one():
                problems.append(what)
        stored = conn.execute(text("SELECT count(*) FROM instance")).scalar_one()
    announced = sum(
        int(e.payload.get("count", 0))
        for e in store.changes(limit=100_000)
        if e.kind == repository.EVENTS.INSTANCES_ADDED
    )
    if announced != stored:
        problems.append(f"INSTANCES_ADDED announced {announced} instances, {stored} stored")
    return problems


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Case], list[Path]]:
    folder = tmp_path_factory.mktemp("hostile")
    made = {display_name(case.make(folder)): case for case in CASES}
    good = good_files(folder / "good")
    return folder, made, good


def test_the_corpus_has_more_than_sixty_kinds() -> None:
    assert len({case.name for case in CASES}) >= 60


def test_good_files_land_and_each_hostile_file_is_reported_with_its_reason(
    store: repository.Store, corpus: tuple[Path, dict[str, Case], list[Path]]
) -> None:
    folder, made, good = corpus
    report = ingest(store, [folder], workers=2)
    skipped = dict(report.skipped)
    for name, case in made.items():
        if case.expect == REJECT:
            assert name in skipped, f"{case.name} ({name}) was stored"
            assert case.reason in skipped[name], (case.name, skipped[name])
        elif case.expect == ACCEPT:
            assert name not in skipped, f"{case.name}: {skipped.get(name)}"
    assert not {str(p) for p in good} & set(skipped)
    assert all("Traceback" not in reason for reason in skipped.values())
    for path in good:
        assert store.get_instance_from_image_id(f"dicomfile:{path}") is not None, path
    assert consistency_problems(store) == []
    expected_rejects = sum(case.expect == REJECT for case in made.values())
    either = sum(case.expect == EITHER for case in made.values())
    assert expected_rejects <= len(skipped) <= expected_rejects + either


def test_the_command_line_reports_every_hostile_file_without_a_traceback(
    db_url: str, corpus: tuple[Path, dict[str, Case], list[Path]]
) -> None:
    folder, made, good = corpus
    cli = str(Path(sys.executable).parent / "dicom-repo")
    command = [cli, "--db", db_url, "ingest", str(folder), "--workers", "2", "--quiet"]
    done = subprocess.run(command, capture_output=True, timeout=300, env={**os.environ})
    out, err = done.stdout.decode(), done.stderr.decode("utf-8", "replace")
    assert done.returncode == 1, err
    assert "Traceback" not in err + out
    ingested, _, skipped = (int(part.split()[0]) for part in out.strip().split(", "))
    rejects = sum(case.expect == REJECT for case in made.values())
    assert ingested >= len(good) and skipped >= rejects
    again = subprocess.run(command, capture_output=True, timeout=300)
    assert again.stdout.decode().startswith("0 ingested"), again.stdout

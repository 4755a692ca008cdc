"""Migrations: one head, up from empty, down to base and up again with data, models agree."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

import repository
from repository import ConflictError, NotMigratedError, RepositoryError, migrate
from repository.engine import make_engine


def test_there_is_a_single_head_and_it_is_the_one_read_without_alembic() -> None:
    script = ScriptDirectory.from_config(migrate.alembic_config())
    assert len(script.get_heads()) == 1
    assert migrate.head_revision() == script.get_current_head()


MIGRATIONS = {
    "a_base.py": 'revision = "a"\ndown_revision = None\n',
    "b_typed.py": 'revision: str = "b"\ndown_revision: str | None = "a"  # a comment\n',
    "c_branch.py": (
        '"""Revision ID: c\nrevision = "x"\n"""\nrevision = \'c\'\ndown_revision = \'a\'\n'
    ),
    "d_merge.py": 'revision = "d"\ndown_revision: tuple[str, ...] = (\n    "b",\n    "c",\n)\n',
}
"""A base, a revision, a branch (a docstring line that looks like one) and their merge."""


@pytest.mark.parametrize("files", [["a_base.py"], ["a_base.py", "c_branch.py"], list(MIGRATIONS)])
def test_the_head_read_without_alembic_is_alembics(tmp_path: Path, files: list[str]) -> None:
    versions = tmp_path / "versions"
    versions.mkdir()
    (versions / "__init__.py").write_text('revision = "not a migration"\n')
    for name in files:
        (versions / name).write_text(MIGRATIONS[name])
    assert migrate.script_head(versions) == ScriptDirectory(str(tmp_path)).get_current_head()


def test_two_heads_or_an_unreadable_revision_are_errors(tmp_path: Path) -> None:
    for name in ("a_base.py", "b_typed.py", "c_branch.py"):
        (tmp_path / name).write_text(MIGRATIONS[name])
    with pytest.raises(RepositoryError, match=r"2 heads: \['b', 'c'\]"):
        migrate.script_head(tmp_path)
    (tmp_path / "c_branch.py").write_text("revision = make_revision()\n")
    with pytest.raises(RepositoryError, match=r"cannot read revision = make_revision\(\)"):
        migrate.script_head(tmp_path)


def test_upgrade_from_empty_creates_the_schema_and_models_match(empty_db_url: str) -> None:
    engine = make_engine(empty_db_url)
    assert migrate.current_revision(engine) is None
    migrate.upgrade(engine)
    assert migrate.current_revision(engine) == migrate.head_revision()
    assert {"study", "series_list", "series", "instance", "change"} <= set(
        inspect(engine).get_table_names()
    )
    assert migrate.model_differences(engine) == []
    engine.dispose()


def test_downgrade_to_base_and_up_again_with_data_present(db_url: str) -> None:
    with repository.connect(db_url) as store:
        store.add_instances([{"StudyInstanceUID": "1.2", "SeriesInstanceUID": "1.2.1",
                              "SOPInstanceUID": "1.2.1.1"}])  # fmt: skip
    engine = make_engine(db_url)
    migrate.downgrade(engine, "base")
    assert not set(inspect(engine).get_table_names()) & {"study", "instance", "change"}
    migrate.upgrade(engine)
    assert migrate.model_differences(engine) == []
    engine.dispose()
    with repository.connect(db_url) as store:
        assert store.get_study_instance_uids() == []
        store.add_instances([{"StudyInstanceUID": "1.2", "SeriesInstanceUID": "1.2.1",
                              "SOPInstanceUID": "1.2.1.1"}])  # fmt: skip
        assert store.get_study_instance_uids() == ["1.2"]


@pytest.mark.postgresql
def test_an_unmigrated_postgresql_database_is_never_migrated_implicitly(
    pg_empty_url: str,
) -> None:
    with pytest.raises(NotMigratedError, match=r"dicom-repo .*db upgrade"):
        repository.connect(pg_empty_url)
    engine = make_engine(pg_empty_url)
    assert inspect(engine).get_table_names() == []
    engine.dispose()


def test_an_outdated_database_asks_for_an_upgrade(db_url: str) -> None:
    engine = make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0000'"))
    engine.dispose()
    with pytest.raises(NotMigratedError, match="db upgrade"):
        repository.connect(db_url)


@pytest.mark.postgresql
def test_json_columns_use_lz4_on_postgresql(pg_empty_url: str) -> None:
    engine = make_engine(pg_empty_url)
    migrate.upgrade(engine)
    with engine.connect() as conn:
        has_lz4 = conn.execute(
            text("SELECT 'lz4' = ANY(enumvals) FROM pg_settings"
                 " WHERE name = 'default_toast_compression'")
        ).scalar()  # fmt: skip
        rows: Any = conn.execute(text(
            "SELECT c.relname, a.attcompression FROM pg_attribute a "
            "JOIN pg_class c ON c.oid = a.attrelid "
            "WHERE c.relnamespace = current_schema()::regnamespace AND a.attname = 'metadata'"
        )).all()  # fmt: skip
    engine.dispose()
    if not has_lz4:
        pytest.skip("this PostgreSQL server is built without lz4")
    assert {name: comp for name, comp in rows} == {"study": "l", "series": "l", "instance": "l"}


def test_lookup_indexes_exist(db_url: str) -> None:
    engine = make_engine(db_url)
    found = inspect(engine).get_indexes("instance")
    indexes = {tuple(ix["column_names"]) for ix in found}
    uniques = {tuple(u["column_names"]) for u in inspect(engine).get_unique_constraints("instance")}
    engine.dispose()
    # SOP Instance UID lookups use the index on (sop_instance_uid, data_source), unique from
    # 0005 and not since 0006 (sop_instance keeps the rule: Citus allows no such unique index)
    assert ("sop_instance_uid", "data_source") in indexes
    assert not any(ix["unique"] for ix in found if ix["column_names"][0] == "sop_instance_uid")
    assert ("image_id",) in indexes
    assert ("series_id", "sop_class_uid", "instance_number") in indexes
    assert ("study_instance_uid", "series_id", "sop_instance_uid") in uniques


def _two_copies_at_0004(engine: Any) -> None:
    """One SOP Instance UID under two studies of one data source, as 0004 allowed under a race."""
    statements = [
        "INSERT INTO study (id, study_instance_uid, metadata) VALUES (:n, :uid, '{}')",
        "INSERT INTO series_list (id, study_id, data_source) VALUES (:n, :n, 'default')",
        "INSERT INTO series (id, series_list_id, series_instance_uid, metadata) "
        "VALUES (:n, :n, :uid || '.1', '{}')",
        "INSERT INTO instance (id, series_id, sop_instance_uid, image_id, metadata) "
        "VALUES (:n, :n, '1.2.3.4', :uid, '{}')",
    ]
    with engine.begin() as conn:
        for n in (1, 2):
            for statement in statements:
                conn.execute(text(statement), {"n": n, "uid": f"1.2.{n}"})


def test_0005_refuses_duplicate_sop_instances_naming_them_then_fills_data_source(
    empty_db_url: str,
) -> None:
    engine = make_engine(empty_db_url)
    migrate.upgrade(engine, "0004")
    _two_copies_at_0004(engine)
    with pytest.raises(ConflictError, match=r"1\.2\.3\.4 \(2 copies in data source 'default'\)"):
        migrate.upgrade(engine)
    assert migrate.current_revision(engine) == "0004"
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM instance WHERE id = 2"))
    migrate.upgrade(engine)
    assert migrate.model_differences(engine) == []
    with engine.connect() as conn:
        assert conn.execute(text("SELECT data_source FROM instance")).scalars().all() == ["default"]
    migrate.downgrade(engine, "0004")
    migrate.upgrade(engine)
    engine.dispose()


def test_0006_files_existing_rows_under_their_study_and_registers_their_sop_uids(
    empty_db_url: str,
) -> None:
    engine = make_engine(empty_db_url)
    migrate.upgrade(engine, "0004")
    _two_copies_at_0004(engine)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM instance WHERE id = 2"))
    migrate.upgrade(engine)
    with engine.connect() as conn:
        for table in ("series_list", "series", "instance"):
            owners = conn.execute(text(f"SELECT id, study_instance_uid FROM {table} ORDER BY id"))
            assert owners.all() == [(1, "1.2.1"), (2, "1.2.2")][: 1 if table == "instance" else 2]
        registered = conn.execute(text("SELECT * FROM sop_instance")).mappings().all()
    engine.dispose()
    assert [dict(row) for row in registered] == [{
        "sop_instance_uid": "1.2.3.4", "data_source": "default",
        "study_instance_uid": "1.2.1", "series_instance_uid": "1.2.1.1",
    }]  # fmt: skip
    with repository.connect(empty_db_url) as store:
        with pytest.raises(
            ConflictError, match=r"already stored in study 1\.2\.1 series 1\.2\.1\.1"
        ):
            store.add_instances([{"StudyInstanceUID": "1.2.2", "SeriesInstanceUID": "1.2.2.1",
                                  "SOPInstanceUID": "1.2.3.4"}])  # fmt: skip
        study = store.get_study("1.2.1")
        assert study is not None
        assert study.series_lists[0].series[0].instances[0].sop_instance_uid == "1.2.3.4"

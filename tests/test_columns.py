"""The typed-column table drives the schema, the writes and the read models by name."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson

from repository import Store
from repository.columns import INSTANCE_COLUMNS, SERIES_COLUMNS, STUDY_COLUMNS
from repository.models import Instance, Series, Study
from repository.schema import instance_table, series_table, study_table

SCRIPT = Path(__file__).with_name("extended_columns.py")


def test_a_new_column_entry_reaches_table_inserts_reads_and_updates(empty_db_url: str) -> None:
    # A fresh interpreter imports the package with one more entry in INSTANCE_COLUMNS and
    # creates its scratch tables in this test's database (a SQLite file, a PostgreSQL schema).
    done = subprocess.run(
        [sys.executable, str(SCRIPT), empty_db_url], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    seen = orjson.loads(done.stdout)
    assert "ix_instance_slice_thickness" in seen["indexes"]  # the table, with its index
    big = {uid: v for uid, v in seen["stored"].items() if uid.startswith("1.2.3.1.")}
    assert len(big) == 70 and set(big.values()) == {1.25}  # bulk insert (COPY on PostgreSQL)
    assert seen["read_series"] == [1.25]  # read model of a series' instances
    assert seen["read_instance"] == 2.5  # read model of one instance (small insert path)
    small = {uid: v for uid, v in seen["stored"].items() if uid.startswith("1.2.3.2.")}
    assert small == {"1.2.3.2.1": 5.0, "1.2.3.2.2": 5.0}  # update_metadata_for_series


def test_tables_and_read_models_have_every_typed_column() -> None:
    for table, model, columns in (
        (instance_table, Instance, INSTANCE_COLUMNS),
        (series_table, Series, SERIES_COLUMNS),
        (study_table, Study, STUDY_COLUMNS),
    ):
        for column in columns:
            assert table.c[column.name].index == (column.index or None), column.name
            assert column.name in model.__dataclass_fields__, (model, column.name)


def test_typed_columns_are_cut_to_their_size_and_the_json_keeps_the_value(store: Store) -> None:
    long_id = "P" * 100
    store.add_instances([{
        "StudyInstanceUID": "1.2", "SeriesInstanceUID": "1.2.1", "SOPInstanceUID": "1.2.1.1",
        "PatientID": long_id, "ModalitiesInStudy": ["MR", "CT", "MR"],
    }])  # fmt: skip
    study = store.get_study("1.2")
    assert study is not None
    assert study.patient_id == long_id[:64]
    assert study.metadata["PatientID"] == long_id

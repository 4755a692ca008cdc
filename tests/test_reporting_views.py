"""The reporting views on SQLite and PostgreSQL: columns and types, values from typed columns and
JSON, counts after every kind of write, the sop_class table, indexes, migration up and down."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from pydicom import uid
from sqlalchemy import inspect, text
from test_dicomweb_pull_scripted import SERIES, STUDY, Scripted, scripted  # noqa: F401 (fixture)

import repository
from repository import RepositoryError, migrate
from repository.engine import make_engine
from repository.sources.dicomweb import DicomWebSource

V_STUDY = [
    "study_instance_uid",
    "patient_id",
    "patient_name",
    "patient_birth_date",
    "patient_sex",
    "study_date",
    "study_time",
    "accession_number",
    "study_description",
    "modalities_in_study",
    "number_of_series",
    "number_of_instances",
    "data_sources",
    "created_at",
    "updated_at",
]
V_SERIES = [
    "series_instance_uid",
    "study_instance_uid",
    "data_source",
    "modality",
    "series_number",
    "series_description",
    "series_date",
    "body_part_examined",
    "manufacturer",
    "manufacturer_model_name",
    "station_name",
    "number_of_instances",
    "number_of_frames",
]
V_INSTANCE = [
    "sop_instance_uid",
    "series_instance_uid",
    "study_instance_uid",
    "data_source",
    "modality",
    "sop_class_uid",
    "sop_class_name",
    "instance_number",
    "rows",
    "columns",
    "number_of_frames",
    "transfer_syntax_uid",
    "content_date",
    "slice_thickness",
]

ST, SE = "1.2.826.0.1.3680043.10.1016.1", "1.2.826.0.1.3680043.10.1016.1.1"


def rows(url: str, query: str, **params: Any) -> list[tuple[Any, ...]]:
    """Rows of ``query`` read with a connection of our own."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(query), params)]
    finally:
        engine.dispose()


def instance(sop: int, series: str = SE, **md: Any) -> dict[str, Any]:
    return {
        "StudyInstanceUID": ST,
        "SeriesInstanceUID": series,
        "SOPInstanceUID": f"{series}.{sop}",
        "SOPClassUID": uid.CTImageStorage,
        "Modality": "CT",
        "InstanceNumber": sop,
        **md,
    }


def study_counts(url: str, study: str = ST) -> tuple[Any, ...]:
    return rows(
        url,
        "SELECT number_of_series, number_of_instances, data_sources,"
        " modalities_in_study FROM v_study WHERE study_instance_uid = :s",
        s=study,
    )[0]


def series_counts(url: str) -> list[tuple[Any, ...]]:
    return rows(
        url,
        "SELECT series_instance_uid, data_source, number_of_instances,"
        " number_of_frames, station_name FROM v_series ORDER BY 1, 2",
    )


@pytest.mark.parametrize(
    ("view", "columns"), [("v_study", V_STUDY), ("v_series", V_SERIES), ("v_instance", V_INSTANCE)]
)
def test_views_have_exactly_the_documented_columns(
    db_url: str, view: str, columns: list[str]
) -> None:
    engine = make_engine(db_url)
    assert [c["name"] for c in inspect(engine).get_columns(view)] == columns
    engine.dispose()


def test_values_come_from_typed_columns_and_json_with_their_types(db_url: str) -> None:
    with repository.connect(db_url) as store:
        store.add_instances(
            [
                instance(
                    1,
                    PatientName={"Alphabetic": "Doe^Jane", "Ideographic": "X"},
                    PatientBirthDate="19700102",
                    StudyDate="20240115",
                    ContentDate="20240116",
                    SliceThickness=1.25,
                    Rows=8,
                    Columns=8,
                    StationName="CT1",
                    Manufacturer="ACME",
                    ManufacturerModelName="M1",
                    SeriesDate="20240115",
                )
            ]
        )
    study = rows(db_url, "SELECT patient_name, patient_birth_date, study_date FROM v_study")[0]
    series = rows(
        db_url,
        "SELECT series_date, manufacturer, manufacturer_model_name, station_name FROM v_series",
    )[0]
    inst = rows(
        db_url,
        "SELECT sop_class_name, content_date, slice_thickness, number_of_frames FROM v_instance",
    )[0]
    dates = [study[1], study[2], series[0], inst[1]]
    if db_url.startswith("sqlite"):  # SQLite: ISO 8601 text, documented
        assert dates == ["1970-01-02", "2024-01-15", "2024-01-15", "2024-01-16"]
    else:
        assert dates == [
            dt.date(1970, 1, 2),
            dt.date(2024, 1, 15),
            dt.date(2024, 1, 15),
            dt.date(2024, 1, 16),
        ]
    assert study[0] == "Doe^Jane"
    assert series[1:] == ("ACME", "M1", "CT1")
    assert inst[0] == "CT Image Storage"
    assert isinstance(inst[2], float) and inst[2] == 1.25
    assert inst[3] == 1


def test_dates_compare_and_group_the_same_on_both_databases(db_url: str) -> None:
    with repository.connect(db_url) as store:
        for n, date in enumerate(["20231231", "20240101", "20240131", "20240201"], start=1):
            store.add_instances(
                [
                    {
                        **instance(1),
                        "StudyInstanceUID": f"{ST}.{n}",
                        "SeriesInstanceUID": f"{SE}.{n}",
                        "SOPInstanceUID": f"{SE}.{n}.1",
                        "StudyDate": date,
                    }
                ]
            )
    got = rows(
        db_url,
        "SELECT substr(CAST(study_date AS TEXT), 1, 7), COUNT(*) FROM v_study"
        " WHERE study_date >= :since GROUP BY substr(CAST(study_date AS TEXT), 1, 7)"
        " ORDER BY 1",
        since="2024-01-01",
    )
    assert got == [("2024-01", 2), ("2024-02", 1)]
    first = rows(db_url, "SELECT MIN(study_date) FROM v_study")[0][0]
    assert str(first) == "2023-12-31"


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        ({"ContentDate": "2024.02.03"}, "2024-02-03"),  # ACR-NEMA form
        ({"ContentDate": "20240230"}, None),  # no such day
        ({"ContentDate": "2024"}, None),
        ({"SliceThickness": "1A"}, None),  # malformed DS kept as text
    ],
)
def test_bad_json_values_are_null_not_errors(
    db_url: str, stored: dict[str, Any], expected: Any
) -> None:
    with repository.connect(db_url) as store:
        store.add_instances([instance(1, **stored)])
    date, thickness = rows(db_url, "SELECT content_date, slice_thickness FROM v_instance")[0]
    value = date if "ContentDate" in stored else thickness
    assert (str(value) if value is not None else None) == expected


def test_frames_count_one_per_image_and_none_without_pixels(db_url: str) -> None:
    with repository.connect(db_url) as store:
        store.add_instances(
            [
                instance(1, Rows=4),
                instance(2, Rows=4, NumberOfFrames=7),
                instance(3, SOPClassUID=uid.BasicTextSRStorage),
            ]
        )
    got = rows(db_url, "SELECT instance_number, number_of_frames FROM v_instance ORDER BY 1")
    assert got == [(1, 1), (2, 7), (3, 0)]
    assert series_counts(db_url)[0][2:4] == (3, 8)


def test_counts_are_exact_after_every_kind_of_write(db_url: str) -> None:
    url = db_url
    with repository.connect(url) as store:
        store.add_instances([instance(1, Rows=4, StationName="A"), instance(2, Rows=4)])
        assert study_counts(url) == (1, 2, "default", "CT")
        store.add_series_metadata(
            [
                {
                    "StudyInstanceUID": ST,
                    "SeriesInstanceUID": f"{ST}.2",
                    "Modality": "SEG",
                    "StationName": "S",
                }
            ]
        )
        assert study_counts(url) == (2, 2, "default", "CT\\SEG")
        assert series_counts(url) == [(SE, "default", 2, 2, "A"), (f"{ST}.2", "default", 0, 0, "S")]
        store.add_instances(
            [instance(1, series=f"{ST}.2", Modality="SEG", Rows=4, NumberOfFrames=3)]
        )
        assert study_counts(url) == (2, 3, "default", "CT\\SEG")
        assert series_counts(url)[1] == (f"{ST}.2", "default", 1, 3, "S")
        store.add_instances([instance(1, Rows=4), instance(3, Rows=4)], data_source="pacs")
        assert study_counts(url) == (2, 4, "default,pacs", "CT\\SEG")
        assert series_counts(url)[:2] == [(SE, "default", 2, 2, "A"), (SE, "pacs", 2, 2, None)]
        store.update_metadata_for_series(ST, SE, {"StationName": "B", "NumberOfFrames": 2})
        assert series_counts(url)[:2] == [(SE, "default", 2, 4, "B"), (SE, "pacs", 2, 4, "B")]
        assert study_counts(url) == (2, 4, "default,pacs", "CT\\SEG")


def test_counts_are_exact_after_every_kind_of_delete(db_url: str) -> None:
    url = db_url
    with repository.connect(url) as store:
        store.add_instances([instance(n, Rows=4) for n in (1, 2, 3)])
        store.add_instances([instance(1, series=f"{ST}.2", Modality="SEG", Rows=4)])
        store.add_instances([instance(1, Rows=4), instance(2, Rows=4)], data_source="pacs")
        assert study_counts(url) == (2, 4, "default,pacs", "CT\\SEG")
        store.delete_instances(ST, SE, [f"{SE}.1"], data_source="default")
        assert series_counts(url)[:2] == [(SE, "default", 2, 2, None), (SE, "pacs", 2, 2, None)]
        assert study_counts(url) == (2, 4, "default,pacs", "CT\\SEG")  # SOP 1 is still in pacs
        store.delete_series(ST, f"{ST}.2")
        assert study_counts(url) == (1, 3, "default,pacs", "CT")
        store.delete_study(ST, data_source="pacs")
        assert study_counts(url) == (1, 2, "default", "CT")
        assert rows(url, "SELECT count(*) FROM v_instance") == [(2,)]
        store.delete_study(ST)
        assert [rows(url, f"SELECT count(*) FROM {v}") for v in ("v_study", "v_series",
                "v_instance")] == [[(0,)]] * 3  # fmt: skip


def test_counts_are_exact_after_a_dicomweb_pull(
    store: repository.Store,
    scripted: Scripted,  # noqa: F811 (the fixture imported above)
) -> None:
    source = DicomWebSource(scripted.url)
    source.pull(store)
    url = store.engine.url.render_as_string(hide_password=False)
    assert study_counts(url, STUDY)[:3] == (3, 4, source.name)
    assert [r[2:4] for r in series_counts(url)] == [(2, 2), (1, 1), (1, 1)]
    assert [r[0] for r in series_counts(url)] == SERIES


def test_sop_class_table_holds_the_standard_names(db_url: str) -> None:
    names = dict(rows(db_url, "SELECT uid, name FROM sop_class"))
    assert names[uid.CTImageStorage] == "CT Image Storage"
    assert names[uid.SegmentationStorage] == "Segmentation Storage"
    assert len(names) > 200
    assert uid.ExplicitVRLittleEndian not in names  # a transfer syntax, not a SOP class


def test_station_lookup_uses_its_expression_index(db_url: str) -> None:
    query = "SELECT series_instance_uid FROM v_series WHERE station_name = 'CT1'"
    engine = make_engine(db_url)
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            plan = " ".join(str(r[-1]) for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {query}"))
        else:
            conn.exec_driver_sql("SET enable_seqscan = off")  # the test tables are tiny
            plan = " ".join(str(r[0]) for r in conn.exec_driver_sql(f"EXPLAIN {query}"))
    engine.dispose()
    assert "ix_series_station_name" in plan


def test_downgrade_drops_the_views_and_db_check_still_checks_sop_class(
    db_url: str, request: pytest.FixtureRequest
) -> None:
    engine = make_engine(db_url)
    if request.node.callspec.params["db_url"] == "citus":
        with pytest.raises(RepositoryError, match="cannot downgrade below 0006: the tables are"):
            migrate.downgrade(engine, "0001")
        return
    migrate.downgrade(engine, "0001")
    inspector = inspect(engine)
    assert "sop_class" not in inspector.get_table_names()
    assert not set(inspector.get_view_names()) & {"v_study", "v_series", "v_instance"}
    assert any("sop_class" in str(d) for d in migrate.model_differences(engine))
    migrate.upgrade(engine)
    assert {"v_study", "v_series", "v_instance"} <= set(inspect(engine).get_view_names())
    assert migrate.model_differences(engine) == []
    engine.dispose()

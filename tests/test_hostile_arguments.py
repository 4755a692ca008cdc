"""Every public Store method, called with hostile arguments, raises only RepositoryError
subclasses, and SQLite and PostgreSQL give the same answer for the same call.

Before the arguments were validated up front, these calls escaped the hierarchy (TypeError,
UnicodeEncodeError, orjson's "Integer exceeds 64-bit range") or were answered differently by the
two databases (``get_study(123)``: None on SQLite, DatabaseError on PostgreSQL).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

import repository
from repository import migrate
from repository.engine import make_engine
from repository.ingest import ingest

STUDY, SERIES, SOP = "1.2.3", "1.2.3.4", "1.2.3.4.5"
CT = "1.2.840.10008.5.1.4.1.1.2"


def instance(sop: str = SOP, **values: Any) -> dict[str, Any]:
    """A naturalized CT instance of the one test series."""
    return {"StudyInstanceUID": STUDY, "SeriesInstanceUID": SERIES, "SOPInstanceUID": sop,
            "SOPClassUID": CT, "Modality": "CT", **values}  # fmt: skip


HOSTILE: dict[str, Any] = {
    "None": None,
    "int": 123,
    "float": 1.5,
    "bool": True,
    "bytes": b"1.2.3",
    "empty": "",
    "blank": "   ",
    "surrogate": "1.2\ud8003",
    "nul": "1.2\x003",
    "huge": "1." * 5000,
    "list": ["1.2.3"],
    "dict": {"a": 1},
    "object": object(),
}
"""Values of the wrong type or content, tried in every argument position."""

BAD_VALUES: dict[str, Any] = {
    "nan": math.nan,
    "inf": math.inf,
    "-inf": -math.inf,
    "int-beyond-64-bits": 10**30,
    "lone-surrogate": "a\ud800b",
    "nul-inside": "A\x00B",
    "object": object(),
    "bytes": b"\x00\x01",
    "set": {1, 2},
}
"""Element values no database can store as given."""


def _noop(event: Any) -> None:
    pass


Call = Callable[[repository.Store], Any]


def _calls() -> dict[str, Call]:
    calls: dict[str, Call] = {}
    for name, x in HOSTILE.items():
        calls |= {
            f"add_instances({name})": lambda s, x=x: s.add_instances(x),
            f"add_instances([{name}])": lambda s, x=x: s.add_instances([x]),
            f"add_instances(data_source={name})": lambda s, x=x: s.add_instances(
                [instance("1.9.1")], data_source=x),
            f"add_instances(made_in_client={name})": lambda s, x=x: s.add_instances(
                [instance("1.9.2")], made_in_client=x),
            f"add_instances(wado_root={name})": lambda s, x=x: s.add_instances(
                [instance("1.9.3")], wado_root=x),
            f"add_instances(wado_uri={name})": lambda s, x=x: s.add_instances(
                [instance("1.9.4")], wado_uri=x),
            f"add_instances(SOPInstanceUID={name})": lambda s, x=x: s.add_instances(
                [instance(x)]),
            f"add_study({name})": lambda s, x=x: s.add_study(x),
            f"add_study(data_source={name})": lambda s, x=x: s.add_study(
                {"StudyInstanceUID": "1.7"}, data_source=x),
            f"add_study(wado_root={name})": lambda s, x=x: s.add_study(
                {"StudyInstanceUID": "1.7"}, wado_root=x),
            f"add_series_metadata({name})": lambda s, x=x: s.add_series_metadata(x),
            f"add_series_metadata(made_in_client={name})": lambda s, x=x: s.add_series_metadata(
                {"StudyInstanceUID": "1.6", "SeriesInstanceUID": "1.6.1"}, made_in_client=x),
            f"add_normalized({name})": lambda s, x=x: s.add_normalized(x),
            f"update_metadata_for_series({name}, ...)": lambda s, x=x: (
                s.update_metadata_for_series(x, SERIES, {"SeriesDescription": "a"})),
            f"update_metadata_for_series(..., {name}, ...)": lambda s, x=x: (
                s.update_metadata_for_series(STUDY, x, {"SeriesDescription": "a"})),
            f"update_metadata_for_series(..., {name})": lambda s, x=x: (
                s.update_metadata_for_series(STUDY, SERIES, x)),
            f"get_study({name})": lambda s, x=x: s.get_study(x),
            f"get_series({name}, ...)": lambda s, x=x: s.get_series(x, SERIES),
            f"get_series(..., {name})": lambda s, x=x: s.get_series(STUDY, x),
            f"get_series(data_source={name})": lambda s, x=x: s.get_series(
                STUDY, SERIES, data_source=x),
            f"get_instance({name}, ...)": lambda s, x=x: s.get_instance(x, SERIES, SOP),
            f"get_instance(..., {name})": lambda s, x=x: s.get_instance(STUDY, SERIES, x),
            f"get_instance(data_source={name})": lambda s, x=x: s.get_instance(
                STUDY, SERIES, SOP, data_source=x),
            f"get_instance_from_image_id({name})": lambda s, x=x: (
                s.get_instance_from_image_id(x)),
            f"get_display_sets({name})": lambda s, x=x: s.get_display_sets(x),
            f"get_display_sets(handlers={name})": lambda s, x=x: s.get_display_sets(
                STUDY, handlers=x),
            f"get_display_sets(handlers=[{name}])": lambda s, x=x: s.get_display_sets(
                STUDY, handlers=[x]),
            f"get_display_sets(data_source={name})": lambda s, x=x: s.get_display_sets(
                STUDY, data_source=x),
            f"subscribe({name})": lambda s, x=x: s.subscribe(x, _noop),
            f"subscribe(callback={name})": lambda s, x=x: s.subscribe("*", x),
            f"subscribe(since={name})": lambda s, x=x: s.subscribe("*", _noop, since=x),
            f"subscribe(include_made_in_client={name})": lambda s, x=x: s.subscribe(
                "*", _noop, include_made_in_client=x),
            f"changes({name})": lambda s, x=x: s.changes(x),
            f"changes(limit={name})": lambda s, x=x: s.changes(0, x),
            f"run_in_transaction({name})": lambda s, x=x: s.run_in_transaction(x),
            f"run_in_transaction(attempts={name})": lambda s, x=x: s.run_in_transaction(
                lambda: 1, attempts=x),
        }  # fmt: skip
    for name, v in BAD_VALUES.items():
        calls |= {
            f"InstanceNumber={name}": lambda s, v=v: s.add_instances(
                [instance("1.8.1", InstanceNumber=v)]),
            f"SliceThickness={name}": lambda s, v=v: s.add_instances(
                [instance("1.8.2", SliceThickness=v)]),
            f"PatientName={name}": lambda s, v=v: s.add_instances(
                [instance("1.8.3", PatientName=v)]),
            f"sequence item {name}": lambda s, v=v: s.add_instances(
                [instance("1.8.4", ReferencedImageSequence=[{"ReferencedSOPInstanceUID": "1"},
                                                            v])]),
            f"DICOM JSON {name}": lambda s, v=v: s.add_instances([{
                "0020000D": {"vr": "UI", "Value": [STUDY]},
                "0020000E": {"vr": "UI", "Value": [SERIES]},
                "00080018": {"vr": "UI", "Value": ["1.8.5"]},
                "00180050": {"vr": "DS", "Value": [v]}}]),
            f"series summary {name}": lambda s, v=v: s.add_series_metadata(
                {"StudyInstanceUID": STUDY, "SeriesInstanceUID": "1.8.6", "SeriesNumber": v}),
            f"update {name}": lambda s, v=v: s.update_metadata_for_series(
                STUDY, SERIES, {"SliceThickness": v}),
        }  # fmt: skip
    return calls


CALLS = _calls()


def outcome(store: repository.Store, call: Call) -> str:
    """What a call did, comparable across databases: the result's type, or the error class.

    Anything but a RepositoryError escaping is a failure of the test."""
    try:
        result = call(store)
    except repository.RepositoryError as error:
        return f"raised {type(error).__name__}"
    if isinstance(result, repository.Subscription):
        result.unsubscribe()
    if isinstance(result, list):
        return f"list of {len(result)}"
    return f"returned {type(result).__name__}"


@pytest.fixture
def both_stores(tmp_path: Path, pg_empty_url: str) -> Iterator[list[repository.Store]]:
    """The same content in a SQLite and a PostgreSQL store."""
    engine = make_engine(pg_empty_url)
    migrate.upgrade(engine)
    engine.dispose()
    sqlite_url = f"sqlite:///{tmp_path / 'h.db'}"
    stores = [repository.connect(sqlite_url), repository.connect(pg_empty_url)]
    for store in stores:
        store.add_instances([instance(), instance("1.2.3.4.6", InstanceNumber=2)])
    yield stores
    for store in stores:
        store.close()


def test_hostile_arguments_raise_only_repository_errors_and_both_databases_agree(
    both_stores: list[repository.Store],
) -> None:
    sqlite, postgres = both_stores
    assert make_url(postgres.engine.url).get_backend_name() == "postgresql"
    escaped: list[str] = []
    disagree: list[str] = []
    for name, call in CALLS.items():
        answers = []
        for store in (sqlite, postgres):
            try:
                answers.append(outcome(store, call))
            except Exception as error:  # the defect: an undocumented exception
                escaped.append(f"{store.dialect} {name}: {type(error).__name__}: {error}"[:200])
                answers.append("escaped")
        if answers[0] != answers[1]:
            disagree.append(f"{name}: sqlite {answers[0]}, postgresql {answers[1]}")
    assert (escaped, disagree) == ([], [])
    # What was accepted is stored alike by both databases, and readable.
    stored = []
    for store in (sqlite, postgres):
        study = store.get_study(STUDY)
        assert study is not None
        stored.append(
            {
                i.sop_instance_uid: (i.metadata, i.image_id, i.instance_number)
                for sl in study.series_lists
                for se in sl.series
                for i in se.instances
            }
        )
    assert stored[0] == stored[1]
    assert {SOP, "1.2.3.4.6"} <= stored[0].keys()


@pytest.mark.parametrize("name", ["nan", "inf", "-inf", "int-beyond-64-bits", "lone-surrogate"])
def test_unstorable_element_values_are_rejected_naming_the_element(
    store: repository.Store, name: str
) -> None:
    value = BAD_VALUES[name]
    keyword = "InstanceNumber" if name == "int-beyond-64-bits" else "SliceThickness"  # IS, DS
    with pytest.raises(repository.InvalidValueError, match=keyword):
        store.add_instances([instance("1.8.2", **{keyword: value})])
    assert store.get_study_instance_uids() == []


def test_integer_beyond_the_column_range_is_kept_in_the_json_with_a_null_column(
    store: repository.Store,
) -> None:
    store.add_instances([instance(InstanceNumber=2**40)])
    stored = store.get_instance(STUDY, SERIES, SOP)
    assert stored is not None
    assert stored.metadata["InstanceNumber"] == 2**40
    assert stored.instance_number is None


def test_non_object_sequence_items_are_rejected_not_dropped(store: repository.Store) -> None:
    items = [{"ReferencedSOPInstanceUID": "1.2"}, "1.3"]
    with pytest.raises(repository.InvalidValueError, match=r"ReferencedImageSequence\[1\]"):
        store.add_instances([instance(ReferencedImageSequence=items)])


def test_reads_reject_a_non_uid_the_same_way_on_both_databases(store: repository.Store) -> None:
    for bad in (123, "1.2\x003", "a\ud800b"):
        with pytest.raises(repository.InvalidUIDError, match="study_uid"):
            store.get_study(bad)
    assert store.get_study("1.2.3 ") is None  # padding is not part of a UID


@pytest.mark.parametrize(
    "call",
    [
        lambda s: ingest(s, None),
        lambda s: ingest(s, "a-folder-name-not-a-list"),
        lambda s: ingest(s, [123]),
        lambda s: ingest(s, [], workers=0),
        lambda s: ingest(s, [], batch_size="x"),
        lambda s: repository.connect(str(s.engine.url), poll_interval="x"),
    ],
    ids=["None", "str", "int-item", "workers-0", "batch-size-text", "poll-interval-text"],
)
def test_ingest_and_connect_arguments_raise_invalid_value_error(
    store: repository.Store, call: Callable[[repository.Store], Any]
) -> None:
    with pytest.raises(repository.InvalidValueError):
        call(store)


@pytest.mark.parametrize("name", ["a\x00b.dcm", "a\ud800b.dcm"])
def test_ingest_reports_an_impossible_file_name_instead_of_raising(
    store: repository.Store, name: str
) -> None:
    report = ingest(store, [name], workers=1)
    [(shown, reason)] = report.skipped
    assert reason and shown.startswith("a")

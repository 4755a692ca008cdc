"""Every cookbook report, run on SQLite and PostgreSQL against known data.

The expected result of each report is computed here from the description of the archive
(tests/reporting_data.py), in Python, not from the database.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydicom.uid import UID
from reporting_data import Inst, Ser, Stu, archive, archive_as_stored, iso, store_archive

import repository
from repository.engine import make_engine
from repository.reporting import REPORTS, get_report, read_only_query
from repository.reporting.cookbook import render

Row = tuple[Any, ...]
Studies = list[Stu]


def stored(a: Studies) -> Iterator[tuple[Stu, Ser, Inst]]:
    """Every stored instance row (an instance in two data sources is two rows)."""
    return ((st, se, i) for st in a for se in st.series for i in se.instances)


def series_rows(a: Studies) -> Iterator[tuple[Stu, Ser]]:
    return ((st, se) for st in a for se in st.series)


def frames(inst: Inst) -> int:
    return inst.frames if inst.frames is not None else (1 if inst.rows is not None else 0)


def sop_uid(se: Ser, inst: Inst) -> str:
    return f"{se.uid}.{inst.number}"


def modalities(st: Stu) -> str:
    return "\\".join(sorted({se.modality for se in st.series} | set(st.claims)))


def day(date: str | None) -> str | None:
    value = iso(date)
    return value.isoformat() if value else None


def study_facts(st: Stu) -> tuple[int, int, str]:
    """number_of_series, number_of_instances (distinct UIDs), data_sources."""
    sops = {sop_uid(se, i) for se in st.series for i in se.instances}
    return (
        len({se.uid for se in st.series}),
        len(sops),
        ",".join(sorted({se.source for se in st.series})),
    )


def per_month(a: Studies, p: dict[str, Any]) -> list[Row]:
    seen: dict[tuple[str, str], set[str]] = defaultdict(set)
    for st in a:
        for se in st.series:
            if st.date and p["since"] <= day(st.date) <= p["until"]:  # type: ignore[operator]
                seen[(str(day(st.date))[:7], se.modality)].add(st.uid)
    return [(month, m, len(uids)) for (month, m), uids in sorted(seen.items())]


def per_sop_class(a: Studies, p: dict[str, Any]) -> list[Row]:
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for _, _, i in stored(a):
        counts[i.sop_class][0] += 1
        counts[i.sop_class][1] += frames(i)
    rows = [(c, UID(c).name, n, f) for c, (n, f) in counts.items()]
    return sorted(rows, key=lambda r: (-r[2], r[0]))


def without_instances(a: Studies, p: dict[str, Any]) -> list[Row]:
    return sorted(
        (st.uid, se.uid, se.source, se.modality, None)
        for st, se in series_rows(a)
        if not se.instances
    )


def missing_claimed(a: Studies, p: dict[str, Any]) -> list[Row]:
    rows = []
    for st in a:
        have = {se.modality for se in st.series}
        rows += [(st.uid, modalities(st), m) for m in sorted(set(st.claims) - have)]
    return sorted(rows)


def busiest_stations(a: Studies, p: dict[str, Any]) -> list[Row]:
    facts: dict[str, list[Any]] = defaultdict(lambda: [set(), 0, 0])
    for st, se in series_rows(a):
        if se.station:
            facts[se.station][0].add(st.uid)
            facts[se.station][1] += 1
            facts[se.station][2] += len(se.instances)
    rows = [(s, len(u), n, i) for s, (u, n, i) in facts.items()]
    return sorted(rows, key=lambda r: (-r[3], r[0]))[: p["limit"]]


def busy_patients(a: Studies, p: dict[str, Any]) -> list[Row]:
    by_patient: dict[str, list[Stu]] = defaultdict(list)
    for st in a:
        if st.patient_id:
            by_patient[st.patient_id].append(st)
    rows = [
        (
            pid,
            min(str(s.patient_name) for s in sts),
            len(sts),
            min(str(day(s.date)) for s in sts),
            max(str(day(s.date)) for s in sts),
        )
        for pid, sts in by_patient.items()
        if len(sts) > p["n"]
    ]
    return sorted(rows, key=lambda r: (-r[2], r[0]))


def by_private_tag(a: Studies, p: dict[str, Any]) -> list[Row]:
    return sorted(
        (st.uid, se.uid, sop_uid(se, i)) for st, se, i in stored(a) if i.private == p["value"]
    )


def thickness_histogram(a: Studies, p: dict[str, Any]) -> list[Row]:
    facts: dict[float, list[Any]] = defaultdict(lambda: [0, set()])
    for _, se, i in stored(a):
        if se.modality == p["modality"] and i.thickness is not None:
            facts[i.thickness][0] += 1
            facts[i.thickness][1].add(se.uid)
    return [(t, n, len(s)) for t, (n, s) in sorted(facts.items())]


def per_data_source(a: Studies, p: dict[str, Any]) -> list[Row]:
    facts: dict[str, list[Any]] = defaultdict(lambda: [set(), 0, 0])
    for st, se in series_rows(a):
        facts[se.source][0].add(st.uid)
        facts[se.source][1] += 1
        facts[se.source][2] += len(se.instances)
    return [(s, len(u), n, i) for s, (u, n, i) in sorted(facts.items())]


def per_model(a: Studies, p: dict[str, Any]) -> list[Row]:
    facts: dict[tuple[str, str | None], list[int]] = defaultdict(lambda: [0, 0])
    for _, se in series_rows(a):
        if se.manufacturer:
            facts[(se.manufacturer, se.model)][0] += 1
            facts[(se.manufacturer, se.model)][1] += len(se.instances)
    rows = [(m, model, n, i) for (m, model), (n, i) in facts.items()]
    return sorted(rows, key=lambda r: (-r[2], r[0], r[1]))


def largest(a: Studies, p: dict[str, Any]) -> list[Row]:
    rows = [(st.uid, st.patient_id, day(st.date), modalities(st), *study_facts(st)[:2]) for st in a]
    return sorted(rows, key=lambda r: (-r[5], r[0]))[: p["limit"]]


def patient_studies(a: Studies, p: dict[str, Any]) -> list[Row]:
    rows = [
        (st.uid, day(st.date), None, None, modalities(st), *study_facts(st))
        for st in a
        if st.patient_id == p["patient_id"]
    ]
    return sorted(rows, key=lambda r: (str(r[1]), r[0]))


def per_transfer_syntax(a: Studies, p: dict[str, Any]) -> list[Row]:
    counts: dict[str, int] = defaultdict(int)
    for _, _, i in stored(a):
        counts[i.transfer_syntax] += 1
    return sorted(counts.items(), key=lambda r: (-r[1], r[0]))


def multiframe(a: Studies, p: dict[str, Any]) -> list[Row]:
    facts: dict[str, list[int]] = defaultdict(list)
    for _, se, i in stored(a):
        if frames(i) > 1:
            facts[se.modality].append(frames(i))
    rows = [(m, len(f), sum(f), max(f)) for m, f in facts.items()]
    return sorted(rows, key=lambda r: (-r[2], r[0]))


def incomplete(a: Studies, p: dict[str, Any]) -> list[Row]:
    return sorted(
        (st.uid, st.patient_id, st.patient_name, day(st.date))
        for st in a
        if not (st.patient_id and st.patient_name and st.date)
    )


def body_parts(a: Studies, p: dict[str, Any]) -> list[Row]:
    facts: dict[tuple[str, str], list[Any]] = defaultdict(lambda: [0, set()])
    for st, se in series_rows(a):
        if se.body_part:
            facts[(se.modality, se.body_part)][0] += 1
            facts[(se.modality, se.body_part)][1].add(st.uid)
    rows = [(m, b, n, len(s)) for (m, b), (n, s) in facts.items()]
    return sorted(rows, key=lambda r: (r[0], -r[2], r[1]))


EXPECTED: dict[str, tuple[dict[str, Any], Callable[[Studies, dict[str, Any]], list[Row]]]] = {
    "studies-per-modality-per-month": ({}, per_month),
    "instances-and-frames-per-sop-class": ({}, per_sop_class),
    "series-without-instances": ({}, without_instances),
    "studies-missing-a-claimed-modality": ({}, missing_claimed),
    "busiest-stations": ({"limit": "3"}, busiest_stations),
    "patients-with-more-than-n-studies": ({}, busy_patients),
    "instances-by-private-tag": ({"value": "ALPHA"}, by_private_tag),
    "ct-slice-thickness-histogram": ({}, thickness_histogram),
    "studies-per-data-source": ({}, per_data_source),
    "series-per-manufacturer-model": ({}, per_model),
    "largest-studies": ({"limit": "4"}, largest),
    "patient-studies": ({"patient_id": "P2"}, patient_studies),
    "instances-per-transfer-syntax": ({}, per_transfer_syntax),
    "multiframe-instances-per-modality": ({}, multiframe),
    "studies-with-incomplete-patient-data": ({}, incomplete),
    "body-parts-per-modality": ({}, body_parts),
}
"""Report name -> (parameters given, the function computing its expected rows)."""


def plain(value: Any) -> Any:
    """Database values as the expectations write them: ISO dates, ints for exact sums."""
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return int(value)
    return value


@pytest.fixture
def archive_url(db_url: str) -> str:
    with repository.connect(db_url) as store:
        store_archive(store, archive())
    return db_url


def test_every_report_has_an_expectation_and_the_cookbook_has_at_least_12() -> None:
    assert {r.name for r in REPORTS} == set(EXPECTED)
    assert len(REPORTS) >= 12


def test_docs_cookbook_is_generated_from_the_registry() -> None:
    docs = (Path(__file__).parent.parent / "docs" / "reporting.md").read_text(encoding="utf-8")
    assert render() in docs, "run: python -m repository.reporting.cookbook docs/reporting.md"


@pytest.mark.parametrize("name", list(EXPECTED))
def test_cookbook_report_gives_the_expected_rows(archive_url: str, name: str) -> None:
    report = get_report(name)
    given, expect = EXPECTED[name]
    params = report.bind(given)
    engine = make_engine(archive_url)
    with read_only_query(engine, report.sql_for(engine.dialect.name), params) as result:
        rows = [tuple(plain(v) for v in row) for row in result.rows]
    engine.dispose()
    expected = expect(archive_as_stored(), params)
    assert expected, f"the archive must give {name} something to find"
    assert rows == expected

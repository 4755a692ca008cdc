"""The SQL of a QIDO-RS search: one query for the page of matches, one for its counts.

Conditions on the searched level and the levels above it are joined in; conditions on levels
below it (a study search by Modality or SOPClassUID) become one ``EXISTS`` subquery, so a study
is returned once however many of its series match. Typed columns are indexed; other attributes
are read from the level's JSON metadata.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, and_, exists, func, select

from .._reads import json_text
from ..schema import (
    INSTANCE_IN_SERIES,
    instance_table,
    same_study,
    series_list_table,
    series_table,
    study_table,
)
from .attributes import INSTANCE, SERIES, STUDY, Attribute, Level
from .matching import condition


@dataclass
class Search:
    """A parsed QIDO-RS search: the level, its filters, the page wanted."""

    level: Level
    filters: list[tuple[Attribute, str]] = field(default_factory=list)
    modalities: list[str] = field(default_factory=list)
    fuzzy: bool = False
    limit: int = 1000
    offset: int = 0
    scope_depth: int = 0


@dataclass(frozen=True)
class Match:
    """One result row: ids, UIDs, and the JSON metadata text of each level searched."""

    ids: tuple[int, ...]
    uids: tuple[str, ...]
    modalities: str | None
    metadata: tuple[str, ...]


def _expression(attr: Attribute) -> Any:
    column = attr.level.columns.get(attr.key)
    if column is not None:
        return column
    document = attr.level.table.c.metadata
    if attr.key == attr.tag:  # not a keyword: stored in its DICOM JSON form
        path: tuple[Any, ...] = (attr.key, "Value", 0)
        return document[(*path, "Alphabetic") if attr.vr == "PN" else path].as_string()
    if attr.vr == "PN":
        return document[(attr.key, "Alphabetic")].as_string()
    return document[attr.key].as_string()


def _base(level: Level) -> Select[Any]:
    ids: list[Any] = [study_table.c.id]
    uids: list[Any] = [study_table.c.study_instance_uid]
    docs: list[Any] = [json_text(study_table.c.metadata)]
    if level.rank >= SERIES.rank:
        ids.append(series_table.c.id)
        uids.append(series_table.c.series_instance_uid)
        docs.append(json_text(series_table.c.metadata))
    if level.rank >= INSTANCE.rank:
        ids.append(instance_table.c.id)
        uids.append(instance_table.c.sop_instance_uid)
        docs.append(json_text(instance_table.c.metadata))
    stmt = select(*ids, *uids, study_table.c.modalities_in_study, *docs)
    if level.rank >= SERIES.rank:
        stmt = (
            stmt.select_from(series_table)
            .join(series_list_table, same_study(series_list_table, series_table)
                  & (series_list_table.c.id == series_table.c.series_list_id))
            .join(study_table, same_study(study_table, series_list_table)
                  & (study_table.c.id == series_list_table.c.study_id))
        )  # fmt: skip
    if level.rank >= INSTANCE.rank:
        stmt = stmt.join(
            instance_table,
            INSTANCE_IN_SERIES,
        )
    return stmt


def _below(level: Level, conditions: Sequence[ColumnElement[bool]], deepest: int) -> Any:
    """EXISTS over the levels below ``level`` down to rank ``deepest``."""
    if level is STUDY:
        sub = (
            select(1)
            .select_from(series_table)
            .join(series_list_table, same_study(series_list_table, series_table)
                  & (series_list_table.c.id == series_table.c.series_list_id))
            .where(same_study(series_table, study_table),
                   series_list_table.c.study_id == study_table.c.id)
        )  # fmt: skip
        if deepest >= INSTANCE.rank:
            sub = sub.join(instance_table, same_study(instance_table, series_table)
                           & (instance_table.c.series_id == series_table.c.id))  # fmt: skip
    else:
        sub = (
            select(1)
            .select_from(instance_table)
            .where(
                same_study(instance_table, series_table),
                instance_table.c.series_id == series_table.c.id,
            )
        )
    return exists(sub.where(*conditions))


def statement(search: Search, dialect: str) -> Select[Any]:
    """The SELECT of one page (``limit + 1`` rows, to tell whether more exist)."""
    level = search.level
    stmt = _base(level)
    here: list[ColumnElement[bool]] = []
    below: list[ColumnElement[bool]] = []
    deepest = level.rank
    for attr, value in search.filters:
        cond = condition(_expression(attr), attr, value, fuzzy=search.fuzzy, dialect=dialect)
        if cond is None:
            continue
        if attr.level.rank <= level.rank:
            here.append(cond)
        else:
            below.append(cond)
            deepest = max(deepest, attr.level.rank)
    if search.modalities:
        if level is STUDY:
            below.append(series_table.c.modality.in_(search.modalities))
            deepest = max(deepest, SERIES.rank)
        else:
            here.append(
                exists(select(1).select_from(series_table).join(
                    series_list_table, same_study(series_list_table, series_table)
                    & (series_list_table.c.id == series_table.c.series_list_id)
                ).where(same_study(series_table, study_table),
                        series_list_table.c.study_id == study_table.c.id,
                        series_table.c.modality.in_(search.modalities)))
            )  # fmt: skip
    if below:
        here.append(_below(level, below, deepest))
    order = level.table.c.id
    stmt = stmt.where(and_(*here)) if here else stmt
    return stmt.order_by(order).limit(search.limit + 1).offset(search.offset)


def run(conn: Connection, search: Search) -> tuple[list[Match], bool]:
    """The page of matches, and whether more matches exist beyond it."""
    rows = conn.execute(statement(search, conn.dialect.name)).all()
    depth = search.level.rank + 1
    matches = [
        Match(tuple(r[:depth]), tuple(r[depth : 2 * depth]), r[2 * depth],
              tuple(r[2 * depth + 1 :]))
        for r in rows[: search.limit]
    ]  # fmt: skip
    return matches, len(rows) > search.limit


def study_counts(conn: Connection, study_ids: Sequence[int]) -> dict[int, tuple[int, int]]:
    """Per study id: (number of series, number of instances)."""
    if not study_ids:
        return {}
    stmt = (
        select(series_list_table.c.study_id,
               func.count(func.distinct(series_table.c.series_instance_uid)),
               func.count(instance_table.c.id))
        .select_from(series_list_table)
        .join(series_table, same_study(series_table, series_list_table)
              & (series_table.c.series_list_id == series_list_table.c.id))
        .outerjoin(instance_table, same_study(instance_table, series_table)
                   & (instance_table.c.series_id == series_table.c.id))
        .where(series_list_table.c.study_id.in_(sorted(set(study_ids))))
        .group_by(series_list_table.c.study_instance_uid, series_list_table.c.study_id)
    )  # fmt: skip
    return {row[0]: (row[1], row[2]) for row in conn.execute(stmt)}


def series_counts(conn: Connection, series_ids: Sequence[int]) -> dict[int, int]:
    """Per series id: its number of instances."""
    if not series_ids:
        return {}
    stmt = (
        select(instance_table.c.series_id, func.count())
        .where(instance_table.c.series_id.in_(sorted(set(series_ids))))
        .group_by(instance_table.c.study_instance_uid, instance_table.c.series_id)
    )
    return {row[0]: row[1] for row in conn.execute(stmt)}

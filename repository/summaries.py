"""Study summaries: every study with its series and instance counts, in one query.

Their typed attributes, like the read models', are derived by name from :mod:`repository.columns`.

Listing studies needs their attributes and how many series and instances each holds, not the
instances themselves; :func:`study_summaries` reads all of it in one statement (instances are
only counted, per series, by the database) instead of loading every study's instances.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import Connection, RowMapping, Text, cast, func, select

from .columns import SERIES_COLUMNS, STUDY_COLUMNS, loaded
from .models import read_model
from .schema import instance_table, same_study, series_list_table, series_table, study_table


@dataclass(frozen=True)
class SeriesSummaryBase:
    """One series of a study summary: its attributes and how many instances it holds.

    Besides these fields it has one per typed series column (:data:`SERIES_COLUMNS`).
    """

    study_instance_uid: str
    series_instance_uid: str
    data_source: str
    wado_root: str | None
    number_of_instances: int
    raw_metadata: str | bytes | Mapping[str, Any] = field(repr=False, compare=False)

    @property
    def metadata(self) -> Mapping[str, Any]:
        """The series-level attributes (naturalized), decoded on first use."""
        raw = self.raw_metadata
        return MappingProxyType(dict(raw) if isinstance(raw, Mapping) else orjson.loads(raw))


@dataclass(frozen=True)
class SeriesListSummary:
    """The series one data source holds for a study."""

    data_source: str
    wado_root: str | None
    wado_uri: str | None
    series: tuple[SeriesSummary, ...]


@dataclass(frozen=True)
class StudySummaryBase:
    """A study's attributes, its series lists and their series, without instances.

    Besides these fields it has one per typed study column (:data:`STUDY_COLUMNS`).
    """

    study_instance_uid: str
    series_lists: tuple[SeriesListSummary, ...]

    @property
    def series(self) -> tuple[SeriesSummary, ...]:
        """Every series of every data source."""
        return tuple(s for sl in self.series_lists for s in sl.series)

    @property
    def number_of_series(self) -> int:
        """Series held, counting a series once per data source that holds it."""
        return len(self.series)

    @property
    def number_of_instances(self) -> int:
        """Instances held, over every series of every data source."""
        return sum(s.number_of_instances for s in self.series)

    @property
    def data_sources(self) -> tuple[str, ...]:
        """The data sources holding series of this study, in the order they were added."""
        return tuple(sl.data_source for sl in self.series_lists)


if TYPE_CHECKING:
    from .models import SeriesColumns, StudyColumns

    @dataclass(frozen=True)
    class SeriesSummary(SeriesSummaryBase, SeriesColumns): ...

    @dataclass(frozen=True)
    class StudySummary(StudySummaryBase, StudyColumns): ...

else:
    SeriesSummary = read_model("SeriesSummary", SeriesSummaryBase, SERIES_COLUMNS, __name__)
    StudySummary = read_model("StudySummary", StudySummaryBase, STUDY_COLUMNS, __name__)


_STUDY = (study_table.c.study_instance_uid, *(study_table.c[c.name] for c in STUDY_COLUMNS))
_SERIES = (
    series_table.c.series_instance_uid,
    *(series_table.c[c.name] for c in SERIES_COLUMNS),
)


def _query() -> Any:
    counts = (
        select(
            instance_table.c.study_instance_uid,
            instance_table.c.series_id,
            func.count().label("number_of_instances"),
        )
        .group_by(instance_table.c.study_instance_uid, instance_table.c.series_id)
        .subquery()
    )
    return (
        select(
            study_table.c.id.label("study_id"), *_STUDY,
            series_list_table.c.id.label("series_list_id"), series_list_table.c.data_source,
            series_list_table.c.wado_root, series_list_table.c.wado_uri,
            series_table.c.id.label("series_id"),
            *_SERIES, cast(series_table.c.metadata, Text).label("series_metadata"),
            func.coalesce(counts.c.number_of_instances, 0).label("number_of_instances"),
        )
        .outerjoin(series_list_table, same_study(series_list_table, study_table)
                   & (series_list_table.c.study_id == study_table.c.id))
        .outerjoin(series_table, same_study(series_table, series_list_table)
                   & (series_table.c.series_list_id == series_list_table.c.id))
        .outerjoin(counts, same_study(counts, series_table)
                   & (counts.c.series_id == series_table.c.id))
        .order_by(study_table.c.id, series_list_table.c.id, series_table.c.series_number.is_(None),
                  series_table.c.series_number, series_table.c.id)
    )  # fmt: skip


def study_summaries(conn: Connection) -> list[StudySummary]:
    """Every study, in the order they were added, with its series and their instance counts.

    Series are ordered as :meth:`Store.get_study` orders them (by data source, then series
    number); a series without instances counts zero.
    """
    rows = conn.execute(_query()).mappings().all()
    studies: dict[int, list[RowMapping]] = {}
    for row in rows:
        studies.setdefault(row["study_id"], []).append(row)
    return [_study(group) for group in studies.values()]


def _study(rows: Sequence[RowMapping]) -> StudySummary:
    lists: dict[int, list[RowMapping]] = {}
    for row in rows:
        if row["series_list_id"] is not None:
            lists.setdefault(row["series_list_id"], []).append(row)
    first = rows[0]
    return StudySummary(
        study_instance_uid=first["study_instance_uid"],
        **loaded(STUDY_COLUMNS, first),
        series_lists=tuple(_series_list(group) for group in lists.values()),
    )


def _series_list(rows: Sequence[RowMapping]) -> SeriesListSummary:
    first = rows[0]
    series = tuple(
        SeriesSummary(
            study_instance_uid=row["study_instance_uid"],
            data_source=row["data_source"],
            wado_root=row["wado_root"],
            number_of_instances=row["number_of_instances"],
            raw_metadata=row["series_metadata"],
            series_instance_uid=row["series_instance_uid"],
            **loaded(SERIES_COLUMNS, row),
        )
        for row in rows
        if row["series_id"] is not None
    )
    return SeriesListSummary(first["data_source"], first["wado_root"], first["wado_uri"], series)

"""Retention: which studies a prune rule selects, and pruning them one study per transaction.

A rule selects by study date (``older_than_days``: StudyDate before today minus N days; a study
without a StudyDate is never selected by it), by when the study was first stored
(``received_before``), by modality (any series of the study) and by data source; the criteria
given all apply. Each selected study is deleted in a transaction of its own
(:meth:`Store.delete_study`), so a prune that dies half-way has deleted whole studies only, and
running it again deletes the rest.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import Connection, Engine, Select, exists, select

from . import changelog
from .errors import InvalidValueError, NotFoundError
from .models import DeleteResult
from .schema import same_study, series_list_table, series_table, study_table
from .validation import check_data_source

if TYPE_CHECKING:
    from .commands import Work
    from .unit_of_work import Transaction


MAX_DAYS = 365 * 1000
"""The most days back a rule may reach (a thousand years; the calendar ends at year 1)."""


def days_ago(days: float) -> dt.datetime:
    """Now (UTC) minus ``days`` days; ``days`` must be a number from 0 to :data:`MAX_DAYS`."""
    if isinstance(days, bool) or not isinstance(days, int | float) or not 0 <= days <= MAX_DAYS:
        raise InvalidValueError(f"a number of days must be from 0 to {MAX_DAYS}, not {days!r}")
    return dt.datetime.now(dt.UTC) - dt.timedelta(days=days)


def compact_changes(
    before_seq: int | None, keep_days: float | None, channel: Callable[[Transaction], str | None]
) -> Work[changelog.Compaction]:
    """``Store.compact_changes``: the work of deleting the changes before ``before_seq`` or
    older than ``keep_days`` days (see :func:`repository.changelog.compact`)."""
    older_than = days_ago(keep_days) if keep_days is not None else None
    if before_seq is not None:
        changelog.check_page(before_seq, 1)
    return lambda tx: changelog.compact(tx.conn, before_seq=before_seq, older_than=older_than,
                                        channel=channel(tx))  # fmt: skip


@dataclass(frozen=True)
class PruneRule:
    """Which studies to prune: every criterion given applies (at least one must be)."""

    older_than_days: float | None = None
    received_before: dt.datetime | None = None
    modalities: Sequence[str] = ()
    data_source: str | None = None

    def __post_init__(self) -> None:
        if self.older_than_days is None and self.received_before is None and not self.modalities:
            raise InvalidValueError(
                "a prune needs a rule: older than N days, received before a date, or modalities"
            )
        if self.older_than_days is not None:
            days_ago(self.older_than_days)
        if self.data_source is not None:
            check_data_source(self.data_source)

    def query(self) -> Select[Any]:
        """The UIDs of the studies this rule selects, oldest stored first."""
        stmt = select(study_table.c.study_instance_uid).order_by(study_table.c.id)
        if self.older_than_days is not None:
            cutoff = days_ago(self.older_than_days).date()
            stmt = stmt.where(study_table.c.study_date < cutoff)
        if self.received_before is not None:
            stmt = stmt.where(study_table.c.created_at < self.received_before)
        lists = select(series_list_table.c.id).where(
            same_study(series_list_table, study_table),
            series_list_table.c.study_id == study_table.c.id,
        )
        if self.data_source is not None:
            lists = lists.where(series_list_table.c.data_source == self.data_source)
            stmt = stmt.where(exists(lists))
        if self.modalities:
            series = (
                select(series_table.c.id)
                .join(series_list_table, same_study(series_list_table, series_table)
                      & (series_list_table.c.id == series_table.c.series_list_id))
                .where(same_study(series_table, study_table),
                       series_list_table.c.study_id == study_table.c.id,
                       series_table.c.modality.in_(list(self.modalities)))
            )  # fmt: skip
            if self.data_source is not None:
                series = series.where(series_list_table.c.data_source == self.data_source)
            stmt = stmt.where(exists(series))
        return stmt

    def studies(self, conn: Connection) -> list[str]:
        """The UIDs of the studies this rule selects now."""
        return [str(uid) for uid in conn.execute(self.query()).scalars()]


@dataclass
class PruneResult:
    """What a prune removed (or, dry, would remove): studies, instances and their files."""

    studies: list[str] = field(default_factory=list)
    instances: int = 0
    files: list[str] = field(default_factory=list)


class Deleter(Protocol):
    """What :func:`prune` needs of a :class:`~repository.Store`."""

    engine: Engine

    def delete_study(self, study_uid: str, *, data_source: str | None = None) -> DeleteResult:
        """Delete one study (see :meth:`Store.delete_study`)."""
        ...


def prune(
    store: Deleter,
    rule: PruneRule,
    *,
    on_study: Callable[[str, DeleteResult | None], object] | None = None,
    dry_run: bool = False,
    selected: Sequence[str] | None = None,
) -> PruneResult:
    """Delete every study ``rule`` selects, one transaction each; ``on_study(uid, result)`` is
    called after each commit (``result`` None when the study went meanwhile, or when dry).
    ``selected``: the UIDs ``rule.studies`` gave, when the caller has already read them."""
    if selected is None:
        with store.engine.connect() as conn:
            selected = rule.studies(conn)
    uids = list(selected)
    result = PruneResult()
    for uid in uids:
        deleted: DeleteResult | None = None
        if not dry_run:
            with contextlib.suppress(NotFoundError):  # deleted by someone else meanwhile
                deleted = store.delete_study(uid, data_source=rule.data_source)
        if deleted is not None or dry_run:
            result.studies.append(uid)
        if deleted is not None:
            result.instances += deleted.instances
            result.files += deleted.files
        if on_study is not None:
            on_study(uid, deleted)
    return result

"""The store's write commands: validate the input, then return the work to run in a transaction.

Each command checks and normalizes its input first (outside any transaction, so bad input
fails before the database is touched) and returns a function of a
:class:`~repository.unit_of_work.Transaction`, which the unit of work runs under a savepoint:
it writes the rows (with :mod:`repository._writes`) and appends the changes it made, built by
the constructors of :mod:`repository.events`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

from sqlalchemy import Connection, func, select, update

from . import _writes, derived, events
from .columns import INSTANCE_COLUMNS, column_values
from .errors import InvalidValueError, NotFoundError
from .normalize import NormalizedInstance, to_naturalized
from .normalize.values import element_key, is_tag_key
from .pydicom_types import is_dataset
from .schema import instance_table, same_study, series_list_table, series_table, study_table
from .unit_of_work import Transaction
from .validation import (
    as_int,
    check_data_source,
    check_flag,
    check_items,
    check_uid,
    check_url,
    require_uid,
)

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

T = TypeVar("T")
Work = Callable[[Transaction], T]
"""What a command returns: the writes to run in a transaction."""

InstanceInput: TypeAlias = "Dataset | Mapping[str, Any] | NormalizedInstance"
"""What :meth:`Store.add_instances` accepts: a Dataset, DICOM JSON or a naturalized dict."""

DEFAULT_DATA_SOURCE = "default"


# --------------------------------------------------------------------------- studies, series


def add_study(
    study: Dataset | Mapping[str, Any],
    data_source: str,
    wado_root: str | None,
    wado_uri: str | None,
) -> Work[bool]:
    """OHIF ``addStudy``: create the study (and its series list) if new; True if created.

    Takes every field OHIF's ``addStudy`` copies; its ``NumInstances`` (the count a study query
    reported) is stored as NumberOfStudyRelatedInstances, its DICOM name.
    """
    check_data_source(data_source)
    wado_root, wado_uri = check_url(wado_root, "wado_root"), check_url(wado_uri, "wado_uri")
    if not (is_dataset(study) or isinstance(study, Mapping)):
        raise InvalidValueError(f"a study must be a pydicom Dataset or a dict, not {study!r:.80}")
    md = _writes.study_metadata(to_naturalized(_ohif_study_fields(study)))
    uid = require_uid(md, "StudyInstanceUID")

    def work(tx: Transaction) -> bool:
        ids, created = _writes.upsert_studies(tx.conn, {uid: md})
        _writes.upsert_series_lists(tx.conn, ids, data_source, wado_root, wado_uri)
        tx.changes.extend(events.study_added(new, data_source, False) for new in created)
        return bool(created)

    return work


def _ohif_study_fields(study: Dataset | Mapping[str, Any]) -> Dataset | Mapping[str, Any]:
    """OHIF's ``NumInstances`` under its DICOM keyword (a keyword given wins)."""
    if is_dataset(study) or "NumInstances" not in study:
        return study
    fields = {k: v for k, v in study.items() if k != "NumInstances"}
    count = study["NumInstances"]
    if count is not None and as_int(count) is None:
        raise InvalidValueError(f"NumInstances {count!r} is not a number of instances")
    fields.setdefault("NumberOfStudyRelatedInstances", count)
    return fields


def _group_summaries(
    items: Sequence[Mapping[str, Any]],
) -> tuple[dict[str, dict[str, dict[str, Any]]], dict[str, dict[str, Any]]]:
    """Series summaries by study and series UID, and each study's metadata."""
    by_study: dict[str, dict[str, dict[str, Any]]] = {}
    study_md: dict[str, dict[str, Any]] = {}
    for index, summary in enumerate(items):
        md = to_naturalized(summary)
        md.pop("imageId", None)
        try:
            study_uid = require_uid(md, "StudyInstanceUID")
            series_uid = require_uid(md, "SeriesInstanceUID")
        except InvalidValueError as error:
            raise type(error)(f"series summary #{index}: {error}") from None
        by_study.setdefault(study_uid, {})[series_uid] = md
        study_md.setdefault(study_uid, _writes.study_metadata(md))
    return by_study, study_md


def add_series_metadata(
    summaries: Iterable[Mapping[str, Any]] | Mapping[str, Any],
    data_source: str,
    made_in_client: bool,
    wado_root: str | None,
    wado_uri: str | None,
) -> Work[None] | None:
    """OHIF ``addSeriesMetadata``: merge the summaries onto their series, creating as needed;
    None when there are no summaries."""
    check_data_source(data_source)
    made_in_client = check_flag(made_in_client, "made_in_client")
    wado_root, wado_uri = check_url(wado_root, "wado_root"), check_url(wado_uri, "wado_uri")
    items = [summaries] if isinstance(summaries, Mapping) else check_items(summaries, "summaries")
    by_study, study_md = _group_summaries(items)
    if not items:
        return None  # nothing to write (not an empty INSERT)

    def work(tx: Transaction) -> None:
        ids, created = _writes.upsert_studies(tx.conn, study_md)
        lists = _writes.upsert_series_lists(tx.conn, ids, data_source, wado_root, wado_uri)
        list_of = {study: lists[ids[study]][0] for study in by_study}
        study_of = {list_id: study for study, list_id in list_of.items()}
        wanted = {
            (list_of[study], uid): md
            for study, series in by_study.items()
            for uid, md in series.items()
        }
        result = _writes.upsert_series(tx.conn, wanted, study_of, incoming_wins=True)
        derived.refresh_studies(tx.conn, ids)
        touched = set(result.created) | set(result.changed)
        tx.changes.extend(events.study_added(s, data_source, made_in_client) for s in created)
        for study, series in by_study.items():
            added = [md for uid, md in series.items() if (list_of[study], uid) in touched]
            if added:
                tx.changes.append(events.series_added(study, added, data_source, made_in_client))

    return work


# --------------------------------------------------------------------------- instances


# --------------------------------------------------------------------------- series updates


def update_metadata_for_series(
    study_uid: str, series_uid: str, metadata: Mapping[str, Any]
) -> Work[None]:
    """OHIF ``updateMetadataForSeries``: merge ``metadata`` into every instance of the series,
    in every data source; the work raises NotFoundError if the series is not stored.

    As OHIF does, a value given as an object is merged into the instance's object under that key
    and other values replace; a list replaces a list (OHIF spreads arrays into objects, a bug not
    copied). Keys may be keywords or 8-hex-digit tags. The typed columns, the series summary and
    the study's derived values follow.
    """
    check_uid(study_uid, "StudyInstanceUID")
    check_uid(series_uid, "SeriesInstanceUID")
    patch = to_naturalized(metadata)
    merged_keys = frozenset(
        _stored_key(key) for key, value in metadata.items() if isinstance(value, Mapping)
    )
    for key in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "imageId"):
        if key in patch:
            raise InvalidValueError(f"update_metadata_for_series cannot change {key}")

    def work(tx: Transaction) -> None:
        targets = tx.conn.execute(
            select(series_table.c.id, series_table.c.metadata, series_list_table.c.data_source,
                   study_table.c.id)
            .join(series_list_table, same_study(series_list_table, series_table)
                  & (series_list_table.c.id == series_table.c.series_list_id))
            .join(study_table, same_study(study_table, series_list_table)
                  & (study_table.c.id == series_list_table.c.study_id))
            .where(series_table.c.study_instance_uid == study_uid,
                   series_table.c.series_instance_uid == series_uid)
            .order_by(series_table.c.id)
            .with_for_update()
        ).all()  # fmt: skip
        if not targets:
            raise NotFoundError(f"series {series_uid} of study {study_uid} is not stored")
        for series_id, series_md, source, _ in targets:
            _patch_series(tx.conn, (study_uid, series_id), series_md, patch, merged_keys)
            tx.changes.append(events.series_updated(study_uid, series_uid, patch, source))
        derived.refresh_studies(tx.conn, [study_uid])

    return work


def _stored_key(key: str) -> str:
    """The key ``key`` is stored under (a public tag given as hex: its keyword)."""
    return element_key(int(key, 16))[0] if is_tag_key(key) else key


def merge_patch(
    md: Mapping[str, Any], patch: Mapping[str, Any], merged_keys: frozenset[str]
) -> dict[str, Any]:
    """``md`` with ``patch`` applied as OHIF's updateMetadataForSeries applies it."""
    out = dict(md)
    for key, value in patch.items():
        old = out.get(key)
        if key in merged_keys and isinstance(old, Mapping) and isinstance(value, Mapping):
            out[key] = {**old, **value}
        else:
            out[key] = value
    return out


def _patch_series(
    conn: Connection,
    series: tuple[str, int],
    series_md: Mapping[str, Any],
    patch: Mapping[str, Any],
    merged_keys: frozenset[str],
) -> None:
    """Merge ``patch`` into the instances of one series row ((study UID, series id)), and into
    the series itself."""
    study_uid, series_id = series
    # FOR NO KEY UPDATE on PostgreSQL (the keys stay): a server keeping these instances' DICOM
    # JSON meanwhile checks its foreign key with a KEY SHARE lock, which this must not block.
    rows = conn.execute(
        select(instance_table.c.id, instance_table.c.metadata)
        .where(
            instance_table.c.study_instance_uid == study_uid,
            instance_table.c.series_id == series_id,
        )
        .order_by(instance_table.c.id)
        .with_for_update(key_share=True)
    ).all()
    for instance_id, md in rows:
        merged = merge_patch(md, patch, merged_keys)
        conn.execute(
            update(instance_table)
            .where(
                instance_table.c.study_instance_uid == study_uid, instance_table.c.id == instance_id
            )
            .values(metadata=merged, **column_values(INSTANCE_COLUMNS, merged))
        )
    series_patch = _writes.series_metadata(patch)
    if series_patch:
        merged_series = merge_patch(series_md, series_patch, merged_keys)
        conn.execute(
            update(series_table)
            .where(series_table.c.study_instance_uid == study_uid, series_table.c.id == series_id)
            .values(**_writes.series_columns(merged_series),
                    metadata=merged_series, updated_at=func.now())
        )  # fmt: skip

"""Store events: their kinds, one payload constructor per kind, and subscriptions.

Writers build each change with the constructor of its kind (:func:`study_added`,
:func:`series_added`, :func:`instances_added`, :func:`series_updated`, :func:`study_deleted`,
:func:`series_deleted`, :func:`instances_deleted`); the change log stores it
and :func:`parse_change` reads it back. Payload keys are OHIF's (``StudyInstanceUID``,
``SeriesInstanceUID``, ``seriesSummaryMetadata``, ``madeInClient``), plus ours (``data_source``,
``seq``, and per kind ``SeriesInstanceUIDs``, ``count``, ``keys``).

A change log shared with a newer version may hold kinds this version does not know: they are
read as events whose ``kind`` is a plain string, delivered to ``"*"`` subscribers only.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from .errors import FeedGapError, InvalidValueError

log = logging.getLogger("repository.events")


class EVENTS(StrEnum):
    """The events the store fires (OHIF's ``DicomMetadataStore.EVENTS``)."""

    STUDY_ADDED = "STUDY_ADDED"
    SERIES_ADDED = "SERIES_ADDED"
    INSTANCES_ADDED = "INSTANCES_ADDED"
    SERIES_UPDATED = "SERIES_UPDATED"
    STUDY_DELETED = "STUDY_DELETED"
    SERIES_DELETED = "SERIES_DELETED"
    INSTANCES_DELETED = "INSTANCES_DELETED"

    @property
    def ohif_name(self) -> str:
        """The event string OHIF's DicomMetadataStore broadcasts for this kind."""
        return OHIF_EVENT_NAMES[self]


OHIF_EVENT_NAMES = {
    EVENTS.STUDY_ADDED: "event::dicomMetadataStore:studyAdded",
    EVENTS.SERIES_ADDED: "event::dicomMetadataStore:seriesAdded",
    EVENTS.INSTANCES_ADDED: "event::dicomMetadataStore:instancesAdded",
    EVENTS.SERIES_UPDATED: "event::dicomMetadataStore:seriesUpdated",
    EVENTS.STUDY_DELETED: "event::dicomMetadataStore:studyDeleted",
    EVENTS.SERIES_DELETED: "event::dicomMetadataStore:seriesDeleted",
    EVENTS.INSTANCES_DELETED: "event::dicomMetadataStore:instancesDeleted",
}
"""OHIF v3's event strings (``DicomMetadataStore.EVENTS`` values); ``subscribe`` accepts them.
OHIF's store has no delete: the three ``*Deleted`` names are ours, in OHIF's style."""

ALL_EVENTS = "*"
"""Subscribe to this to get every event kind through one subscription (one seq order)."""


def event_kind(name: str) -> EVENTS | None:
    """The kind a subscriber names: ours (``"SERIES_ADDED"``), OHIF's event string, or None
    for ``"*"``. Raises :class:`InvalidValueError` for anything else.
    """
    if name == ALL_EVENTS:
        return None
    for kind, ohif in OHIF_EVENT_NAMES.items():
        if name in (kind.value, ohif):
            return kind
    known = ", ".join(EVENTS)
    raise InvalidValueError(
        f"unknown event {name!r}; the store fires {known} (or their OHIF names, such as "
        f"{EVENTS.SERIES_ADDED.ohif_name!r}; {ALL_EVENTS!r} for all)"
    )


@dataclass(frozen=True, slots=True)
class Event:
    """One committed change, as delivered to subscribers and recorded in the change log.

    ``kind`` is an :class:`EVENTS` member, or a plain string for a kind written by a newer
    version of this library (see :attr:`known`).
    """

    kind: EVENTS | str
    seq: int
    study_instance_uid: str
    series_instance_uid: str | None
    data_source: str
    made_in_client: bool
    payload: Mapping[str, Any] = field(default_factory=dict)

    @property
    def known(self) -> bool:
        """False for a change kind this version of the library does not know."""
        return isinstance(self.kind, EVENTS)


# --------------------------------------------------------------------------- constructors


@dataclass(frozen=True)
class PendingChange:
    """A change made in the open transaction, to be appended to the change log at commit."""

    kind: EVENTS
    study_instance_uid: str
    series_instance_uid: str | None
    data_source: str
    made_in_client: bool
    payload: Mapping[str, Any]

    def committed(self, seq: int) -> Event:
        """The event this change became when the change log gave it ``seq``."""
        payload = {**self.payload, "seq": seq}
        return Event(self.kind, seq, self.study_instance_uid, self.series_instance_uid,
                     self.data_source, self.made_in_client, payload)  # fmt: skip


def study_added(study_uid: str, data_source: str, made_in_client: bool) -> PendingChange:
    """STUDY_ADDED: ``{StudyInstanceUID, madeInClient, data_source}``."""
    payload = {"StudyInstanceUID": study_uid, "madeInClient": made_in_client,
               "data_source": data_source}  # fmt: skip
    return PendingChange(EVENTS.STUDY_ADDED, study_uid, None, data_source, made_in_client, payload)


def series_added(
    study_uid: str,
    summaries: Iterable[Mapping[str, Any]],
    data_source: str,
    made_in_client: bool,
) -> PendingChange:
    """SERIES_ADDED: ``{StudyInstanceUID, seriesSummaryMetadata, madeInClient}``, plus
    ``SeriesInstanceUIDs`` (of the summaries) and ``data_source``.

    ``summaries`` are the series summaries of the study that were added or changed, as given.
    """
    listed = [dict(summary) for summary in summaries]
    payload = {"StudyInstanceUID": study_uid, "seriesSummaryMetadata": listed,
               "madeInClient": made_in_client,
               "SeriesInstanceUIDs": [s["SeriesInstanceUID"] for s in listed],
               "data_source": data_source}  # fmt: skip
    return PendingChange(EVENTS.SERIES_ADDED, study_uid, None, data_source, made_in_client, payload)


def instances_added(
    study_uid: str,
    series_uid: str,
    count: int,
    data_source: str,
    made_in_client: bool,
    patient_conflicts: Sequence[str] = (),
) -> PendingChange:
    """INSTANCES_ADDED: ``{StudyInstanceUID, SeriesInstanceUID, madeInClient}``, plus ``count``
    (instances the series gained) and ``data_source``; ``patient_conflicts`` (only when there
    are any) lists why new instances disagree with the study's patient."""
    payload: dict[str, Any] = {"StudyInstanceUID": study_uid, "SeriesInstanceUID": series_uid,
               "madeInClient": made_in_client, "count": count,
               "data_source": data_source}  # fmt: skip
    if patient_conflicts:
        payload["patient_conflicts"] = list(patient_conflicts)
    return PendingChange(
        EVENTS.INSTANCES_ADDED, study_uid, series_uid, data_source, made_in_client, payload
    )


def series_updated(
    study_uid: str, series_uid: str, keys: Iterable[str], data_source: str
) -> PendingChange:
    """SERIES_UPDATED: ``{StudyInstanceUID, SeriesInstanceUID, madeInClient}``, plus ``keys``
    (the attributes changed, sorted) and ``data_source``.

    ``madeInClient`` is False: the update is stored, and subscribers get it by default.
    """
    payload = {"StudyInstanceUID": study_uid, "SeriesInstanceUID": series_uid,
               "madeInClient": False, "keys": sorted(keys), "data_source": data_source}  # fmt: skip
    return PendingChange(EVENTS.SERIES_UPDATED, study_uid, series_uid, data_source, False, payload)


def study_deleted(
    study_uid: str, data_source: str, series_uids: Sequence[str], count: int, study_gone: bool
) -> PendingChange:
    """STUDY_DELETED: ``{StudyInstanceUID, data_source, SeriesInstanceUIDs, count,
    studyRemoved, madeInClient}``: the study's series list of ``data_source`` went, with its
    series and ``count`` instances; ``studyRemoved`` is True when no data source holds the study
    any more."""
    payload = {"StudyInstanceUID": study_uid, "madeInClient": False, "data_source": data_source,
               "SeriesInstanceUIDs": list(series_uids), "count": count,
               "studyRemoved": study_gone}  # fmt: skip
    return PendingChange(EVENTS.STUDY_DELETED, study_uid, None, data_source, False, payload)


def series_deleted(study_uid: str, series_uid: str, data_source: str, count: int) -> PendingChange:
    """SERIES_DELETED: ``{StudyInstanceUID, SeriesInstanceUID, data_source, count,
    madeInClient}``: the series went from ``data_source`` with its ``count`` instances."""
    payload = {"StudyInstanceUID": study_uid, "SeriesInstanceUID": series_uid,
               "madeInClient": False, "data_source": data_source, "count": count}  # fmt: skip
    return PendingChange(EVENTS.SERIES_DELETED, study_uid, series_uid, data_source, False, payload)


def instances_deleted(
    study_uid: str, series_uid: str, data_source: str, sop_uids: Sequence[str]
) -> PendingChange:
    """INSTANCES_DELETED: ``{StudyInstanceUID, SeriesInstanceUID, SOPInstanceUIDs, count,
    data_source, madeInClient}``: these instances went from the series of ``data_source``."""
    payload = {"StudyInstanceUID": study_uid, "SeriesInstanceUID": series_uid,
               "madeInClient": False, "data_source": data_source,
               "SOPInstanceUIDs": sorted(sop_uids), "count": len(sop_uids)}  # fmt: skip
    return PendingChange(
        EVENTS.INSTANCES_DELETED, study_uid, series_uid, data_source, False, payload
    )


_unknown_kinds: set[str] = set()
_unknown_lock = threading.Lock()


def parse_change(
    seq: int,
    kind: str,
    study: str,
    series: str | None,
    data_source: str | None,
    made_in_client: bool,
    payload: Mapping[str, Any] | None,
) -> Event:
    """The event a change-log row holds; an unknown kind is kept as a plain string (logged
    once per kind), so readers pass over it instead of failing.
    """
    try:
        parsed: EVENTS | str = EVENTS(kind)
    except ValueError:
        parsed = str(kind)
        with _unknown_lock:
            first = parsed not in _unknown_kinds
            _unknown_kinds.add(parsed)
        if first:
            log.warning(
                "the change log holds change kind %r (seq %d), unknown to this version "
                "(written by a newer one?): only '*' subscribers get it",
                parsed,
                seq,
            )
    return Event(parsed, seq, study, series, data_source or "", bool(made_in_client),
                 {**(payload or {}), "seq": seq})  # fmt: skip


Callback = Callable[[Event], object]
GapCallback = Callable[[FeedGapError], object]
"""Called when changes a subscription had not been handed were compacted away."""


class Subscription:
    """A callback registered for one event; call :meth:`unsubscribe` to stop it.

    ``last_seq`` is the seq of the last change this subscription has been handed (or skipped,
    if it did not want it): each change is delivered at most once, in seq order.
    """

    def __init__(
        self,
        hub: EventHub,
        kind: EVENTS | None,
        callback: Callback,
        include_made_in_client: bool,
        last_seq: int,
        on_gap: GapCallback | None = None,
    ) -> None:
        self.kind = kind
        self.callback = callback
        self.include_made_in_client = include_made_in_client
        self.last_seq = last_seq
        self.active = True
        self.on_gap = on_gap
        self.gap: FeedGapError | None = None
        """Set when changes this subscription had not been handed were compacted away."""
        self._hub = hub

    def unsubscribe(self) -> None:
        """Stop delivering events to this callback (idempotent)."""
        self._hub.remove(self)

    def wants(self, event: Event) -> bool:
        """True if this subscription should receive ``event``."""
        return (self.kind is None or event.kind == self.kind) and (
            self.include_made_in_client or not event.made_in_client
        )


class EventHub:
    """The subscriptions of one store, and handing each committed event to them once."""

    def __init__(self) -> None:
        self._subscriptions: list[Subscription] = []
        self._lock = threading.Lock()

    def add(
        self,
        kind: str,
        callback: Callback,
        include_made_in_client: bool,
        last_seq: int,
        on_gap: GapCallback | None = None,
    ) -> Subscription:
        """Register ``callback`` for ``kind`` (see :func:`event_kind`), for changes after
        ``last_seq``. Raises :class:`InvalidValueError` (a ValueError) for an unknown name.
        """
        wanted = event_kind(kind)
        if not callable(callback):
            raise TypeError("callback must be callable")
        sub = Subscription(self, wanted, callback, include_made_in_client, last_seq, on_gap)
        with self._lock:
            self._subscriptions.append(sub)
        return sub

    def remove(self, sub: Subscription) -> None:
        """Forget ``sub`` if registered."""
        with self._lock:
            sub.active = False
            if sub in self._subscriptions:
                self._subscriptions.remove(sub)

    def low_water(self) -> int | None:
        """The lowest ``last_seq`` of the live subscriptions (None when there are none)."""
        with self._lock:
            return min((s.last_seq for s in self._subscriptions), default=None)

    def gap(self, error: FeedGapError) -> None:
        """Tell each subscription behind ``error.horizon`` that it missed changes: its
        ``on_gap`` is called, or, without one, the error is logged and the subscription ended.
        The others follow on from the oldest kept change."""
        with self._lock:
            behind = [s for s in self._subscriptions if s.last_seq < error.horizon]
        for sub in behind:
            sub.gap, sub.last_seq = error, error.horizon
            if sub.on_gap is None:
                log.error("subscriber %r ended: %s", sub.callback, error)
                self.remove(sub)
                continue
            try:
                sub.on_gap(error)
            except Exception:
                log.exception("on_gap of subscriber %r failed", sub.callback)

    def dispatch(self, event: Event) -> None:
        """Hand ``event`` to each subscription that has not seen its seq and wants it.

        The caller delivers events in seq order, one thread at a time. A failing callback is
        logged and skipped.
        """
        with self._lock:
            targets = [s for s in self._subscriptions if s.last_seq < event.seq]
        for sub in targets:
            sub.last_seq = event.seq
            if not (sub.active and sub.wants(event)):
                continue
            try:
                sub.callback(event)
            except Exception:
                log.exception(
                    "subscriber %r failed on %s seq %d", sub.callback, event.kind, event.seq
                )

"""Store events and subscriptions; each subscription remembers the last seq it was handed."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

log = logging.getLogger("repository.events")


class EVENTS(StrEnum):
    """The events the store fires (OHIF's ``DicomMetadataStore.EVENTS``)."""

    STUDY_ADDED = "STUDY_ADDED"
    SERIES_ADDED = "SERIES_ADDED"
    INSTANCES_ADDED = "INSTANCES_ADDED"
    SERIES_UPDATED = "SERIES_UPDATED"


@dataclass(frozen=True, slots=True)
class Event:
    """One committed change, as delivered to subscribers and recorded in the change log."""

    kind: EVENTS
    seq: int
    study_instance_uid: str
    series_instance_uid: str | None
    data_source: str
    made_in_client: bool
    payload: Mapping[str, Any] = field(default_factory=dict)


Callback = Callable[[Event], object]

ALL_EVENTS = "*"
"""Subscribe to this to get every event kind through one subscription (one seq order)."""


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
    ) -> None:
        self.kind = kind
        self.callback = callback
        self.include_made_in_client = include_made_in_client
        self.last_seq = last_seq
        self.active = True
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
        self, kind: str, callback: Callback, include_made_in_client: bool, last_seq: int
    ) -> Subscription:
        """Register ``callback`` for ``kind`` (or every kind: ``"*"``), for changes after
        ``last_seq``. Raises ValueError for an unknown event name.
        """
        try:
            event_kind = None if kind == ALL_EVENTS else EVENTS(kind)
        except ValueError:
            known = ", ".join(EVENTS)
            raise ValueError(
                f"unknown event {kind!r}; the store fires {known} (or {ALL_EVENTS!r} for all)"
            ) from None
        if not callable(callback):
            raise TypeError("callback must be callable")
        sub = Subscription(self, event_kind, callback, include_made_in_client, last_seq)
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

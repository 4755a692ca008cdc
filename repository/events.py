"""Store events, subscriptions and their delivery after commit."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
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


class Subscription:
    """A callback registered for one event; call :meth:`unsubscribe` to stop it."""

    def __init__(
        self, hub: EventHub, kind: EVENTS, callback: Callback, include_made_in_client: bool
    ) -> None:
        self.kind = kind
        self.callback = callback
        self.include_made_in_client = include_made_in_client
        self._hub = hub

    def unsubscribe(self) -> None:
        """Stop delivering events to this callback (idempotent)."""
        self._hub.remove(self)

    def wants(self, event: Event) -> bool:
        """True if this subscription should receive ``event``."""
        return event.kind == self.kind and (self.include_made_in_client or not event.made_in_client)


class EventHub:
    """Subscribers of one store, and in-order delivery of committed events."""

    def __init__(self) -> None:
        self._subscriptions: list[Subscription] = []
        self._lock = threading.Lock()

    def add(self, kind: str, callback: Callback, include_made_in_client: bool) -> Subscription:
        """Register ``callback`` for ``kind``; raises ValueError for an unknown event name."""
        try:
            event_kind = EVENTS(kind)
        except ValueError:
            known = ", ".join(EVENTS)
            raise ValueError(f"unknown event {kind!r}; the store fires {known}") from None
        if not callable(callback):
            raise TypeError("callback must be callable")
        sub = Subscription(self, event_kind, callback, include_made_in_client)
        with self._lock:
            self._subscriptions.append(sub)
        return sub

    def remove(self, sub: Subscription) -> None:
        """Forget ``sub`` if registered."""
        with self._lock:
            if sub in self._subscriptions:
                self._subscriptions.remove(sub)

    def deliver(self, events: Iterable[Event]) -> None:
        """Call each subscriber for each event in order; a failing callback is logged, skipped."""
        for event in events:
            with self._lock:
                targets = [s for s in self._subscriptions if s.wants(event)]
            for sub in targets:
                try:
                    sub.callback(event)
                except Exception:
                    log.exception(
                        "subscriber %r failed on %s seq %d", sub.callback, event.kind, event.seq
                    )

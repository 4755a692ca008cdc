"""A small in-memory model of the store's OHIF semantics, for the stateful test.

It follows /work/shared/OHIF-NOTES.md's "our decision" column and the README:
- ``add_instances``: grouped by study and series; the first copy of a SOP instance wins (a
  re-add changes nothing and fires nothing); a new study takes the study attributes of its first
  instance, an existing one only gains attributes it lacks (same for series); STUDY_ADDED per
  new study, one INSTANCES_ADDED per series that gained instances (with ``count``).
- ``add_series_metadata``: a summary is merged over its series (created if new; the last summary
  of a series in one call wins); STUDY_ADDED per new study; one SERIES_ADDED per call and study
  whose series were created or changed, listing those summaries.
- ``add_study``: created if new (STUDY_ADDED, never made in client), else fills what it lacks.
- ``update_metadata_for_series``: merged into every instance of the series in every data
  source (issue 12: an object value is merged into the instance's object, scalars and lists
  replace); series attributes also into the series; one SERIES_UPDATED per data source holding
  the series, ``madeInClient`` false, ``keys`` sorted; missing series: NotFoundError, no change.
- ``get_study_instance_uids`` is in creation order; the studies one call creates come in UID
  order (rows are inserted sorted by natural key, the lock order; OHIF has no mixed batches).
- ModalitiesInStudy is the sorted union of the study's series' modalities.
- Events of rolled-back work never arrive; made-in-client events reach only subscribers that
  asked for them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from repository import Event
from repository.normalize import SERIES_KEYWORDS, STUDY_KEYWORDS, pick

WADO_ROOTS = {"default": None, "pacs": "https://pacs/dicom-web"}
"""The data sources the machine writes to, with the WADO-RS root each is given."""

ExpectedEvent = tuple[str, str, str | None, str, bool, tuple[tuple[str, Any], ...]]
"""(kind, study, series, data source, made in client, the payload keys checked)."""


@dataclass
class ModelSeries:
    metadata: dict[str, Any]
    order: tuple[int, str]  # row creation order: by call, then by UID (the insert order)
    instances: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class ModelStudy:
    metadata: dict[str, Any]
    order: tuple[int, str]  # studies created by one call are inserted in UID order (lock order)
    lists: dict[str, tuple[int, dict[str, ModelSeries]]] = field(default_factory=dict)

    def modalities(self) -> list[str]:
        return sorted({s.metadata["Modality"] for _, series in self.lists.values()
                       for s in series.values() if s.metadata.get("Modality")})  # fmt: skip


def _fill(old: dict[str, Any], new: Mapping[str, Any]) -> None:
    for key, value in new.items():
        old.setdefault(key, value)


def _event(kind: str, study: str, series: str | None, source: str, mic: bool,
           **payload: Any) -> ExpectedEvent:  # fmt: skip
    checked = {"StudyInstanceUID": study, "madeInClient": mic, **payload}
    if series is not None:
        checked["SeriesInstanceUID"] = series
    return (kind, study, series, source, mic, tuple(sorted(checked.items(), key=repr)))


class StoreModel:
    """What the store must hold and fire, by the rules in the module docstring."""

    def __init__(self) -> None:
        self.studies: dict[str, ModelStudy] = {}
        self._counter = 0
        self._call = 0  # the counter when the current call began

    def _next(self) -> int:
        self._counter += 1
        return self._counter

    def _begin(self) -> int:
        self._call = self._next()
        return self._call

    def _study(self, uid: str, md: Mapping[str, Any], source: str, mic: bool,
               events: list[ExpectedEvent]) -> dict[str, ModelSeries]:  # fmt: skip
        if uid not in self.studies:
            self.studies[uid] = ModelStudy(dict(md), (self._call, uid))
            events.append(_event("STUDY_ADDED", uid, None, source, mic))
        else:
            _fill(self.studies[uid].metadata, md)
        lists = self.studies[uid].lists
        if source not in lists:
            lists[source] = (self._next(), {})
        return lists[source][1]

    def study_order(self) -> list[str]:
        """get_study_instance_uids: creation order, by UID among those created by one call."""
        return sorted(self.studies, key=lambda uid: self.studies[uid].order)

    def add_study(self, md: Mapping[str, Any], source: str) -> list[ExpectedEvent]:
        self._begin()
        events: list[ExpectedEvent] = []
        self._study(md["StudyInstanceUID"], pick(md, STUDY_KEYWORDS), source, False, events)
        return events

    def add_instances(self, batch: list[dict[str, Any]], source: str,
                      mic: bool) -> list[ExpectedEvent]:  # fmt: skip
        call = self._begin()
        unique: dict[str, dict[str, Any]] = {}
        for md in batch:
            unique.setdefault(md["SOPInstanceUID"], md)
        events: list[ExpectedEvent] = []
        gained: dict[tuple[str, str], int] = {}
        studies: dict[str, dict[str, ModelSeries]] = {}
        for md in unique.values():
            study, series_uid = md["StudyInstanceUID"], md["SeriesInstanceUID"]
            if study not in studies:  # the study's first instance in the batch
                studies[study] = self._study(study, pick(md, STUDY_KEYWORDS), source, mic, events)
            series_of = studies[study]
            if series_uid not in series_of:
                series_of[series_uid] = ModelSeries(pick(md, SERIES_KEYWORDS), (call, series_uid))
            series = series_of[series_uid]
            if (study, series_uid) not in gained:  # the series' first instance in the batch
                _fill(series.metadata, pick(md, SERIES_KEYWORDS))
            if md["SOPInstanceUID"] not in series.instances:
                series.instances[md["SOPInstanceUID"]] = dict(md)
                gained[(study, series_uid)] = gained.get((study, series_uid), 0) + 1
            else:
                gained.setdefault((study, series_uid), 0)
        events += [_event("INSTANCES_ADDED", st, se, source, mic, count=n)
                   for (st, se), n in gained.items() if n]  # fmt: skip
        return events

    def add_series_metadata(self, summaries: list[dict[str, Any]], source: str,
                            mic: bool) -> list[ExpectedEvent]:  # fmt: skip
        call = self._begin()
        by_study: dict[str, dict[str, dict[str, Any]]] = {}
        for md in summaries:
            by_study.setdefault(md["StudyInstanceUID"], {})[md["SeriesInstanceUID"]] = md
        events: list[ExpectedEvent] = []
        for study, series in by_study.items():
            first = next(md for md in summaries if md["StudyInstanceUID"] == study)
            series_of = self._study(study, pick(first, STUDY_KEYWORDS), source, mic, events)
            touched = []
            for uid, md in series.items():
                if uid not in series_of:
                    series_of[uid] = ModelSeries(dict(md), (call, uid))
                    touched.append(md)
                elif {**series_of[uid].metadata, **md} != series_of[uid].metadata:
                    series_of[uid].metadata.update(md)
                    touched.append(md)
            if touched:
                uids = [md["SeriesInstanceUID"] for md in touched]
                events.append(
                    _event(
                        "SERIES_ADDED",
                        study,
                        None,
                        source,
                        mic,
                        seriesSummaryMetadata=touched,
                        SeriesInstanceUIDs=uids,
                    )
                )
        return events

    def update_metadata_for_series(
        self, study: str, series_uid: str, patch: Mapping[str, Any]
    ) -> list[ExpectedEvent] | None:
        """The events, or None if the series is not stored (NotFoundError)."""
        model = self.studies.get(study)
        targets = [(source, lst[1][series_uid], lst[0]) for source, lst in
                   (model.lists.items() if model else ()) if series_uid in lst[1]]  # fmt: skip
        if not targets:
            return None
        events = []
        for source, series, _ in sorted(targets, key=lambda t: t[1].order):
            for md in series.instances.values():
                for key, value in patch.items():
                    old = md.get(key)
                    merge = isinstance(value, Mapping) and isinstance(old, Mapping)
                    md[key] = {**old, **value} if merge else value
            series.metadata.update(pick(patch, SERIES_KEYWORDS))
            events.append(_event("SERIES_UPDATED", study, series_uid, source, False,
                                 keys=sorted(patch)))  # fmt: skip
        return events


PAYLOAD_KEYS = {
    "STUDY_ADDED": ("StudyInstanceUID", "madeInClient"),
    "INSTANCES_ADDED": ("StudyInstanceUID", "SeriesInstanceUID", "madeInClient", "count"),
    "SERIES_ADDED": ("StudyInstanceUID", "madeInClient", "seriesSummaryMetadata",
                     "SeriesInstanceUIDs"),
    "SERIES_UPDATED": ("StudyInstanceUID", "SeriesInstanceUID", "madeInClient", "keys"),
}  # fmt: skip
"""The payload keys checked per kind (OHIF's, and ours the model predicts)."""


def project_event(event: Event) -> ExpectedEvent:
    """An event as the model states it: the payload keys OHIF (and we) document."""
    kind = str(event.kind)
    payload = {k: event.payload[k] for k in PAYLOAD_KEYS[kind]}
    return (kind, event.study_instance_uid, event.series_instance_uid, event.data_source,
            event.made_in_client, tuple(sorted(payload.items(), key=repr)))  # fmt: skip

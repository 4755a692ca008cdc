"""Random sequences of store operations against an in-memory model of OHIF's semantics.

The machine adds instances (new ones, re-adds, batches mixing series and studies), series
summaries (before or after their instances), studies, updates of series, transactions that
commit several calls and transactions that roll back, on two data sources, some made in
client; three subscribers listen (one ordinary, one with ``include_made_in_client``, one for
OHIF's ``instancesAdded`` string only). After every step each read (``get_study`` whole,
``get_study_instance_uids``) must equal the model (tests/store_model.py, which states the
rules), and each subscriber must have received exactly the events the model predicts, no more;
a step that picks one instance checks ``get_instance``, ``get_series`` (with and without study
and data source) and ``get_instance_from_image_id`` (instance- and frame-level ids).
Not checked: NumberOfStudyRelated* counters (issue 12 is redefining them on branch ohif-input).
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import text
from store_model import WADO_ROOTS, ExpectedEvent, StoreModel, project_event
from strategies import (
    fresh_uid,
    instance_spec,
    patch_spec,
    series_ix,
    sources,
    study_ix,
    study_spec,
    summary_spec,
)

import repository
from repository import EVENTS, ConflictError, Event, NotFoundError, Store

MODALITIES = {1: "CT", 2: "MR", 3: "SEG"}


def _failing_callback(event: Event) -> None:
    """A subscriber that always fails: logged, and neither the write nor others notice."""
    raise RuntimeError("subscriber failure")


class Rollback(Exception):
    """Raised inside a transaction to roll it back."""


class StoreMachine(RuleBasedStateMachine):
    """Drives ``store`` (set by the test) and :class:`StoreModel` side by side."""

    store: Store

    def __init__(self) -> None:
        super().__init__()
        self.model = StoreModel()
        self.prefix = fresh_uid()
        self.received: dict[str, list[Event]] = {"plain": [], "all": [], "instances": []}
        self.committed: list[ExpectedEvent] = []  # every event expected so far, in order
        with self.store.engine.connect() as conn:  # an independent query: where the log ends
            self.start_seq = conn.execute(text("SELECT coalesce(max(seq), 0) FROM change")).one()[0]
        self._lock = threading.Lock()
        self.subscriptions = [
            self.store.subscribe("*", self._collect("plain")),
            self.store.subscribe("*", self._collect("all"), include_made_in_client=True),
            self.store.subscribe(EVENTS.INSTANCES_ADDED.ohif_name, self._collect("instances")),
            self.store.subscribe("*", _failing_callback, include_made_in_client=True),
        ]

    def _collect(self, name: str) -> Any:
        def callback(event: Event) -> None:
            if event.study_instance_uid.startswith(self.prefix + "."):
                with self._lock:
                    self.received[name].append(event)

        return callback

    def teardown(self) -> None:
        for subscription in self.subscriptions:
            subscription.unsubscribe()
        self.check_replay()

    def check_replay(self) -> None:
        """The change log holds exactly the committed events (made in client included); a
        second store on the database replays them to a subscriber, in its follower thread."""
        logged = [e for e in self.store.changes(self.start_seq, limit=100_000)
                  if e.study_instance_uid.startswith(self.prefix + ".")]  # fmt: skip
        assert [project_event(e) for e in logged] == self.committed_in_log_order(logged)
        replayed: list[Event] = []
        done = threading.Event()

        def collect(event: Event) -> None:
            if event.study_instance_uid.startswith(self.prefix + "."):
                replayed.append(event)
            if event.seq >= (logged[-1].seq if logged else 0):
                done.set()

        if not logged:
            return
        with repository.connect(_url(self.store), poll_interval=0.05) as other:
            other.subscribe("*", collect, include_made_in_client=True, since=self.start_seq)
            assert done.wait(30), "the second store did not replay the change log"
        assert [e.seq for e in replayed] == [e.seq for e in logged]
        assert [project_event(e) for e in replayed] == [project_event(e) for e in logged]

    def committed_in_log_order(self, logged: list[Event]) -> list[ExpectedEvent]:
        """The expected events, as a multiset, listed in the order the log has them."""
        remaining = list(self.committed)
        ordered = []
        for event in map(project_event, logged):
            assert event in remaining, f"the change log holds an unexpected {event}"
            remaining.remove(event)
            ordered.append(event)
        assert not remaining, f"the change log lacks {remaining}"
        return ordered

    # ------------------------------------------------------------------ inputs

    def uid(self, *parts: int) -> str:
        return ".".join([self.prefix, *map(str, parts)])

    def instance(self, spec: dict[str, Any]) -> dict[str, Any]:
        md = {
            "StudyInstanceUID": self.uid(spec["study"]),
            "SeriesInstanceUID": self.uid(spec["study"], spec["series"]),
            "SOPInstanceUID": self.uid(spec["study"], spec["series"], spec["sop"]),
            "Modality": MODALITIES[spec["series"]],
            "ImageComments": spec["ImageComments"],
            "NumberOfFrames": 3,
        }
        return md | {k: spec[k] for k in ("PatientID", "InstanceNumber") if spec[k] is not None}

    def summary(self, spec: dict[str, Any]) -> dict[str, Any]:
        md = {"StudyInstanceUID": self.uid(spec["study"]),
              "SeriesInstanceUID": self.uid(spec["study"], spec["series"]),
              "Modality": MODALITIES[spec["series"]]}  # fmt: skip
        keys = ("SeriesDescription", "SeriesNumber", "StudyDescription")
        return md | {k: spec[k] for k in keys if spec[k] is not None}

    def wado_root(self, source: str) -> dict[str, Any]:
        root = WADO_ROOTS[source]
        return {"data_source": source, **({"wado_root": root} if root else {})}

    # ------------------------------------------------------------------ rules

    @initialize()
    def nothing_received_yet(self) -> None:
        self.expect([])

    @rule(specs=st.lists(instance_spec, max_size=6), source=sources, mic=st.booleans())
    def add_instances(self, specs: list[dict[str, Any]], source: str, mic: bool) -> None:
        batch = [self.instance(s) for s in specs]
        expected = self.model.add_instances(batch, source, mic)
        result = self.store.add_instances(batch, made_in_client=mic, **self.wado_root(source))
        gained = sum(dict(e[5]).get("count", 0) for e in expected)
        assert result.added == gained
        assert result.added + result.already_present == len({m["SOPInstanceUID"] for m in batch})
        self.expect(expected)

    @rule(specs=st.lists(summary_spec, min_size=1, max_size=4), source=sources,
          mic=st.booleans())  # fmt: skip
    def add_series_metadata(self, specs: list[dict[str, Any]], source: str, mic: bool) -> None:
        summaries = [self.summary(s) for s in specs]
        expected = self.model.add_series_metadata(summaries, source, mic)
        self.store.add_series_metadata(summaries, made_in_client=mic, **self.wado_root(source))
        self.expect(expected)

    @rule(spec=study_spec, source=sources)
    def add_study(self, spec: dict[str, Any], source: str) -> None:
        md = {"StudyInstanceUID": self.uid(spec["study"])}
        md |= {k: spec[k] for k in ("PatientID", "StudyDescription") if spec[k] is not None}
        expected = self.model.add_study(md, source)
        assert self.store.add_study(md, **self.wado_root(source)) is bool(expected)
        self.expect(expected)

    @rule(study=study_ix, series=series_ix, patch=patch_spec)
    def update_metadata_for_series(self, study: int, series: int, patch: dict[str, Any]) -> None:
        study_uid, series_uid = self.uid(study), self.uid(study, series)
        expected = self.model.update_metadata_for_series(study_uid, series_uid, patch)
        if expected is None:
            with pytest.raises(NotFoundError):
                self.store.update_metadata_for_series(study_uid, series_uid, patch)
            expected = []
        else:
            self.store.update_metadata_for_series(study_uid, series_uid, patch)
        self.expect(expected)

    @rule(
        first=st.lists(instance_spec, max_size=4),
        summaries=st.lists(summary_spec, min_size=1, max_size=2),
        second=st.lists(instance_spec, max_size=4),
        source=sources,
    )
    def transaction_commits(self, first: list[dict[str, Any]], summaries: list[dict[str, Any]],
                            second: list[dict[str, Any]], source: str) -> None:  # fmt: skip
        expected = self.model.add_instances([self.instance(s) for s in first], source, False)
        expected += self.model.add_series_metadata(
            [self.summary(s) for s in summaries], source, False
        )
        expected += self.model.add_instances([self.instance(s) for s in second], source, False)
        with self.store.transaction():
            self.store.add_instances([self.instance(s) for s in first], **self.wado_root(source))
            self.store.add_series_metadata([self.summary(s) for s in summaries],
                                           **self.wado_root(source))  # fmt: skip
            self.expect([])  # nothing is delivered before the commit
            self.store.add_instances([self.instance(s) for s in second], **self.wado_root(source))
        self.expect(expected)

    @rule(specs=st.lists(instance_spec, min_size=1, max_size=4),
          summaries=st.lists(summary_spec, min_size=1, max_size=2), source=sources,
          patch=patch_spec)  # fmt: skip
    def transaction_rolls_back(self, specs: list[dict[str, Any]],
                               summaries: list[dict[str, Any]], source: str,
                               patch: dict[str, Any]) -> None:  # fmt: skip
        series_uids = {self.uid(s["study"], s["series"]) for s in specs}
        with pytest.raises(Rollback), self.store.transaction():
            self.store.add_instances([self.instance(s) for s in specs], **self.wado_root(source))
            self.store.add_series_metadata([self.summary(s) for s in summaries],
                                           **self.wado_root(source))  # fmt: skip
            study = specs[0]["study"]
            self.store.update_metadata_for_series(self.uid(study), self.uid(study,
                                                  specs[0]["series"]), patch)  # fmt: skip
            raise Rollback(sorted(series_uids))
        self.expect([])

    @precondition(lambda self: self.model.studies)
    @rule(data=st.data(), extra=st.lists(instance_spec, max_size=3))
    def conflicting_add(self, data: st.DataObject, extra: list[dict[str, Any]]) -> None:
        """A SOP instance stored in one series, added to another of the same data source:
        the whole batch is rejected, nothing is written, nothing fires."""
        copies = self.copies()
        if not copies:
            return
        study_uid, source, series_uid, _sop, md = data.draw(st.sampled_from(copies))
        series = data.draw(st.sampled_from([j for j in MODALITIES if
                                            self.uid(int(study_uid.rsplit(".", 1)[1]), j)
                                            != series_uid]))  # fmt: skip
        moved = {**md, "SeriesInstanceUID": f"{study_uid}.{series}",
                 "Modality": MODALITIES[series]}  # fmt: skip
        batch = [self.instance(s) for s in extra] + [moved]
        with pytest.raises(ConflictError):
            self.store.add_instances(batch, **self.wado_root(source))
        self.expect([])

    def copies(self) -> list[tuple[str, str, str, str, dict[str, Any]]]:
        """Every stored copy: (study, data source, series, SOP instance UID, metadata)."""
        return [(st_uid, source, se_uid, sop, md)
                for st_uid, study in self.model.studies.items()
                for source, (_, series_of) in study.lists.items()
                for se_uid, series in series_of.items()
                for sop, md in series.instances.items()]  # fmt: skip

    @precondition(lambda self: self.model.studies)
    @rule(data=st.data())
    def point_reads(self, data: st.DataObject) -> None:
        copies = self.copies()
        if not copies:
            return
        study_uid, source, series_uid, sop, md = data.draw(st.sampled_from(copies))
        found = self.store.get_instance(study_uid, series_uid, sop)
        assert found is not None
        assert found.data_source == self.first_source(study_uid, series_uid, sop)
        found = self.store.get_instance(study_uid, series_uid, sop, data_source=source)
        assert found is not None and dict(found.metadata) == md
        image_id = self.image_id(source, study_uid, series_uid, sop)
        for frame_level in (image_id, image_id.removesuffix("/frames/1") + "/frames/3"):  # of 3
            by_id = self.store.get_instance_from_image_id(frame_level)
            assert by_id is not None
            assert (by_id.sop_instance_uid, by_id.data_source) == (sop, source)
        series = self.store.get_series(None, series_uid)
        assert series is not None
        assert series.data_source == self.first_source(study_uid, series_uid)
        series = self.store.get_series(study_uid, series_uid, data_source=source)
        assert series is not None
        assert [i.sop_instance_uid for i in series.instances] == self.instance_order(
            study_uid, source, series_uid
        )

    # ------------------------------------------------------------------ checks

    def first_source(self, study_uid: str, series_uid: str, sop: str | None = None) -> str:
        """The data source whose copy a read without one returns: the first series list
        (in creation order) holding the series (and the instance, if ``sop`` is given)."""
        lists = self.model.studies[study_uid].lists
        return min(
            (order, source)
            for source, (order, s) in lists.items()
            if series_uid in s and (sop is None or sop in s[series_uid].instances)
        )[1]

    def image_id(self, source: str, study: str, series: str, sop: str) -> str:
        root = WADO_ROOTS[source] or ""
        return f"wadors:{root}/studies/{study}/series/{series}/instances/{sop}/frames/1"

    def instance_order(self, study_uid: str, source: str, series_uid: str) -> list[str]:
        series = self.model.studies[study_uid].lists[source][1][series_uid]
        number = [(md.get("InstanceNumber") is None, md.get("InstanceNumber") or 0, sop)
                  for sop, md in series.instances.items()]  # fmt: skip
        return [sop for *_, sop in sorted(number)]

    def expect(self, expected: list[ExpectedEvent]) -> None:
        """Each subscriber received exactly its share of ``expected`` since the last check."""
        self.committed += expected
        wanted = {
            "all": expected,
            "plain": [e for e in expected if not e[4]],
            "instances": [e for e in expected if not e[4] and e[0] == "INSTANCES_ADDED"],
        }
        with self._lock:
            received = {name: list(events) for name, events in self.received.items()}
            for events in self.received.values():
                events.clear()
        for name, events in received.items():
            seqs = [e.seq for e in events]
            assert seqs == sorted(set(seqs)), f"{name}: events out of order or repeated"
            remaining = [project_event(e) for e in events]
            for event in wanted[name]:
                assert event in remaining, f"{name} did not receive {event}; got {remaining}"
                remaining.remove(event)
            assert not remaining, f"{name} received unexpected events {remaining}"

    @invariant()
    def reads_match_the_model(self) -> None:
        uids = [u for u in self.store.get_study_instance_uids() if u.startswith(self.prefix + ".")]
        assert uids == self.model.study_order()
        for index in (1, 2):
            study = self.store.get_study(self.uid(index))
            model = self.model.studies.get(self.uid(index))
            if model is None:
                assert study is None
                continue
            assert study is not None
            for key in ("StudyInstanceUID", "PatientID", "StudyDescription"):
                assert study.metadata.get(key) == model.metadata.get(key), key
            assert study.modalities_in_study == tuple(model.modalities())
            lists = sorted(model.lists.items(), key=lambda item: item[1][0])
            assert [lst.data_source for lst in study.series_lists] == [s for s, _ in lists]
            for stored, (source, (_, series_of)) in zip(study.series_lists, lists, strict=True):
                assert stored.wado_root == WADO_ROOTS[source]
                order = sorted(series_of.items(), key=lambda item: (
                    item[1].metadata.get("SeriesNumber") is None,
                    item[1].metadata.get("SeriesNumber") or 0, item[1].order))  # fmt: skip
                assert [s.series_instance_uid for s in stored.series] == [u for u, _ in order]
                for series in stored.series:
                    self.check_series(series, source, series_of[series.series_instance_uid])

    def check_series(self, series: Any, source: str, model: Any) -> None:
        assert dict(series.metadata) == model.metadata
        study, uid = series.study_instance_uid, series.series_instance_uid
        assert [i.sop_instance_uid for i in series.instances] == self.instance_order(
            study, source, uid
        )
        for inst in series.instances:
            assert dict(inst.metadata) == model.instances[inst.sop_instance_uid]
            assert inst.image_id == self.image_id(source, study, uid, inst.sop_instance_uid)


def _url(store: Store) -> str:
    return store.engine.url.render_as_string(hide_password=False)


MACHINE_SETTINGS = settings(
    max_examples=25,
    stateful_step_count=30,
    deadline=None,
    derandomize=True,  # the same runs every time: CI stays deterministic
    database=None,  # no .hypothesis folder is read or written
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def test_store_follows_ohif_semantics_under_random_operations(module_store: Store) -> None:
    machine = type("Machine", (StoreMachine,), {"store": module_store})
    run_state_machine_as_test(machine, settings=MACHINE_SETTINGS)


def test_an_update_merges_an_object_value_into_the_instances_object(store: Store) -> None:
    """The rule the model applies (issue 12, OHIF's updateMetadataForSeries): an object value
    is merged into the instance's object under that key (before branch ohif-input it replaced
    it)."""
    md = {"StudyInstanceUID": "1.2.3", "SeriesInstanceUID": "1.2.3.4", "SOPInstanceUID": "1.2.3.5",
          "OperatorsName": {"Alphabetic": "Doe^Jane", "Ideographic": "Jane"}}  # fmt: skip
    store.add_instances([md])
    store.update_metadata_for_series("1.2.3", "1.2.3.4", {"OperatorsName": {"Alphabetic": "X"}})
    inst = store.get_instance("1.2.3", "1.2.3.4", "1.2.3.5")
    assert inst is not None
    assert inst.metadata["OperatorsName"] == {"Alphabetic": "X", "Ideographic": "Jane"}

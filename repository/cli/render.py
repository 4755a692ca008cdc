"""How the read commands print studies, series, instances and display sets (JSON and tables)."""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
from rich.table import Table

from ..models import Instance, Series, Study
from ..sop_class_handlers import DisplaySet
from ..summaries import SeriesSummary, StudySummary


def _fields(value: Any, *, leave_out: tuple[str, ...] = ()) -> dict[str, Any]:
    """A dataclass's fields by name (not recursed), without raw metadata and ``leave_out``."""
    return {
        f.name: getattr(value, f.name)
        for f in dataclasses.fields(value)
        if f.name not in ("raw_metadata", *leave_out)
    }


def study_json(study: Study | StudySummary, *, with_metadata: bool = True) -> dict[str, Any]:
    """A study with its series lists and series (not their instances)."""
    out = _fields(study, leave_out=("series_lists",))
    out["series_lists"] = [
        {
            "data_source": sl.data_source,
            "wado_root": sl.wado_root,
            "wado_uri": sl.wado_uri,
            "series": [series_json(s, with_instances=False) for s in sl.series],
        }
        for sl in study.series_lists
    ]
    if isinstance(study, Study) and with_metadata:
        out["metadata"] = dict(study.metadata)
    return out


def series_json(series: Series | SeriesSummary, *, with_instances: bool = True) -> dict[str, Any]:
    """A series with its instance count, metadata and (for a full series) its instances."""
    out = _fields(series, leave_out=("instances", "number_of_instances"))
    if isinstance(series, SeriesSummary):
        out["number_of_instances"] = series.number_of_instances
    else:
        out["number_of_instances"] = len(series.instances)
    out["metadata"] = dict(series.metadata)
    if with_instances and isinstance(series, Series):
        out["instances"] = [instance_json(i, with_metadata=False) for i in series.instances]
    return out


def instance_json(inst: Instance, *, with_metadata: bool = True) -> dict[str, Any]:
    """An instance's typed columns, and its full metadata unless told otherwise."""
    out = _fields(inst)
    if with_metadata:
        out["metadata"] = dict(inst.metadata)
    return out


def studies_table(studies: list[StudySummary]) -> Table:
    """One row per study: UID, patient, date, modalities, description, counts."""
    table = Table("StudyInstanceUID", "Patient", "Date", "Modalities", "Description", "Series",
                  "Instances", box=None)  # fmt: skip
    for s in studies:
        table.add_row(s.study_instance_uid, s.patient_name or s.patient_id or "",
                      str(s.study_date or ""), "\\".join(s.modalities_in_study),
                      s.study_description or "", str(s.number_of_series),
                      str(s.number_of_instances))  # fmt: skip
    return table


def study_table(study: Study) -> Table:
    """One row per series of every data source."""
    table = Table("Data source", "SeriesInstanceUID", "Modality", "#", "Description",
                  "Instances", box=None)  # fmt: skip
    for sl in study.series_lists:
        for s in sl.series:
            table.add_row(sl.data_source, s.series_instance_uid, s.modality or "",
                          str(s.series_number or ""), s.series_description or "",
                          str(len(s.instances)))  # fmt: skip
    return table


def series_table(series: Series) -> Table:
    """One row per instance."""
    table = Table("#", "SOPInstanceUID", "SOPClassUID", "Frames", "imageId", box=None)
    for i in series.instances:
        table.add_row(str(i.instance_number or ""), i.sop_instance_uid, i.sop_class_uid or "",
                      str(i.number_of_frames or 1), i.image_id)  # fmt: skip
    return table


def instance_table(inst: Instance) -> Table:
    """Typed columns, then every metadata attribute (long values cut at 120 characters)."""
    table = Table("Attribute", "Value", box=None)
    for name, value in instance_json(inst, with_metadata=False).items():
        table.add_row(name, "" if value is None else str(value))
    for key, value in inst.metadata.items():
        text = orjson.dumps(value).decode() if not isinstance(value, str) else value
        table.add_row(key, text if len(text) < 120 else text[:117] + "...")
    return table


def display_sets_table(display_sets: list[DisplaySet]) -> Table:
    """One row per display set, with its handler and notes (volume, derived, unsupported)."""
    table = Table("DisplaySetInstanceUID", "Handler", "Plugin", "Modality", "#", "Description",
                  "Instances", "Frames", "Notes", box=None)  # fmt: skip
    for ds in display_sets:
        table.add_row(ds.display_set_instance_uid, ds.sop_class_handler_id, ds.plugin,
                      ds.modality or "", str(ds.series_number or ""), ds.label,
                      str(len(ds.instances)), _frames(ds),
                      "; ".join(_notes(ds)))  # fmt: skip
    return table


def _frames(ds: DisplaySet) -> str:
    return "" if ds.num_image_frames is None else str(ds.num_image_frames)


def _notes(ds: DisplaySet) -> list[str]:
    notes = [n for n, on in (("volume", ds.is_reconstructable),
                             ("derived", ds.is_derived_display_set)) if on]  # fmt: skip
    if ds.referenced_series_instance_uid:
        notes.append(f"refers to {ds.referenced_series_instance_uid}")
    if ds.is_unsupported:
        notes.append(str(ds.extras.get("reason", "")))
    return notes

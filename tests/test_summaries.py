"""Study summaries (``Store.get_study_summaries``, used by ``dicom-repo studies``) on both
databases: counts per data source, series without instances, and agreement with get_study."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner
from test_store import instance as ct_instance

from repository import Store
from repository.cli import main


def instance(study: str, series: str, sop: str, **extra: Any) -> dict[str, Any]:
    """test_store's CT instance, with a patient, date and description."""
    study_level = {"PatientName": "Doe^Jane", "StudyDate": "20240102", "StudyDescription": "Chest"}
    return ct_instance(study, series, sop, **{**study_level, **extra})


def test_summaries_count_series_and_instances_per_data_source(store: Store) -> None:
    store.add_instances([instance("1.2.1", "1.2.1.1", f"1.2.1.1.{n}") for n in range(3)]
                        + [instance("1.2.1", "1.2.1.2", "1.2.1.2.1", Modality="MR")])  # fmt: skip
    store.add_instances([instance("1.2.1", "1.2.1.1", "1.2.1.1.0")], data_source="pacs")
    store.add_series_metadata({"StudyInstanceUID": "1.2.1", "SeriesInstanceUID": "1.2.1.3",
                               "Modality": "SR"}, data_source="pacs")  # fmt: skip
    [summary] = store.get_study_summaries()
    assert summary.study_instance_uid == "1.2.1"
    assert (summary.patient_name, str(summary.study_date)) == ("Doe^Jane", "2024-01-02")
    assert summary.study_description == "Chest"
    assert summary.data_sources == ("default", "pacs")
    default, pacs = summary.series_lists
    assert [(s.series_instance_uid, s.number_of_instances) for s in default.series] == [
        ("1.2.1.1", 3), ("1.2.1.2", 1)]  # fmt: skip
    assert {(s.series_instance_uid, s.number_of_instances) for s in pacs.series} == {
        ("1.2.1.1", 1), ("1.2.1.3", 0)}  # fmt: skip
    assert (summary.number_of_series, summary.number_of_instances) == (4, 5)
    assert set(summary.modalities_in_study) == {"CT", "MR", "SR"}


def test_a_study_with_only_an_empty_series_and_an_empty_store(store: Store) -> None:
    assert store.get_study_summaries() == []
    store.add_series_metadata({"StudyInstanceUID": "1.2.9", "SeriesInstanceUID": "1.2.9.1",
                               "Modality": "MR", "PatientName": "Empty^Series"})  # fmt: skip
    [summary] = store.get_study_summaries()
    assert (summary.number_of_series, summary.number_of_instances) == (1, 0)
    assert summary.series[0].metadata["Modality"] == "MR"


def test_summaries_agree_with_get_study_for_every_study(store: Store) -> None:
    for n in range(4):
        store.add_instances([instance(f"1.3.{n}", f"1.3.{n}.{k}", f"1.3.{n}.{k}.{i}")
                             for k in range(n) for i in range(k + 1)])  # fmt: skip
    store.add_series_metadata({"StudyInstanceUID": "1.3.0", "SeriesInstanceUID": "1.3.0.9"})
    summaries = store.get_study_summaries()
    assert [s.study_instance_uid for s in summaries] == store.get_study_instance_uids()
    for summary in summaries:
        study = store.get_study(summary.study_instance_uid)
        assert study is not None
        assert [s.series_instance_uid for s in summary.series] == [
            s.series_instance_uid for s in study.series]  # fmt: skip
        assert [s.number_of_instances for s in summary.series] == [
            len(s.instances) for s in study.series]  # fmt: skip
        assert summary.modalities_in_study == study.modalities_in_study


def test_studies_command_lists_counts_without_loading_any_study(
    db_url: str, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.add_instances([instance("1.4.1", "1.4.1.1", f"1.4.1.1.{n}") for n in range(3)])

    def no_full_study(*args: object, **kwargs: object) -> None:
        raise AssertionError("studies loaded a whole study")

    monkeypatch.setattr(Store, "get_study", no_full_study)
    result = CliRunner().invoke(main, ["--db", db_url, "studies"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    [row] = [line.split() for line in result.output.splitlines() if "1.4.1 " in line + " "]
    assert row[0] == "1.4.1" and row[-2:] == ["1", "3"]

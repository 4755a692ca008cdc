"""Updates and study-level derived values stay consistent, as OHIF's DicomMetadataStore keeps them.

``updateMetadataForSeries`` (platform/core/src/services/DicomMetadataStore) merges an object
value into the instance's object under that key and replaces other values; ``addSeriesMetadata``
and ``addInstances`` feed the study's ModalitiesInStudy and counts.
"""

from __future__ import annotations

from typing import Any

from repository import Store

CT = "1.2.840.10008.5.1.4.1.1.2"
ENHANCED_CT = "1.2.840.10008.5.1.4.1.1.2.1"


def _instance(series: str, number: int, modality: str = "CT", **extra: Any) -> dict[str, Any]:
    return {"StudyInstanceUID": "1.2.3", "SeriesInstanceUID": f"1.2.3.{series}",
            "SOPInstanceUID": f"1.2.3.{series}.{number}", "SOPClassUID": CT,
            "Modality": modality, "InstanceNumber": number, "Rows": 4, "Columns": 4,
            "PixelSpacing": [1.0, 1.0],
            "PatientName": {"Alphabetic": "Doe^John", "Ideographic": "ド"}, **extra}  # fmt: skip


def _summary(series: str, modality: str, count: int) -> dict[str, Any]:
    return {"StudyInstanceUID": "1.2.3", "SeriesInstanceUID": f"1.2.3.{series}",
            "Modality": modality, "NumberOfSeriesRelatedInstances": count}  # fmt: skip


def _derived(store: Store) -> tuple[tuple[str, ...], int, int]:
    study = store.get_study("1.2.3")
    assert study is not None
    md = study.metadata
    assert tuple(md["ModalitiesInStudy"]) == study.modalities_in_study
    return (study.modalities_in_study, md["NumberOfStudyRelatedSeries"],
            md["NumberOfStudyRelatedInstances"])  # fmt: skip


def test_update_merges_objects_and_replaces_scalars_and_lists(store: Store) -> None:
    """updateMetadataForSeries: `typeof value === 'object'` merges, others replace; arrays
    replace (OHIF spreads them into an object: not copied)."""
    store.add_instances([_instance("1", 1), _instance("1", 2)])
    store.update_metadata_for_series("1.2.3", "1.2.3.1", {
        "PatientName": {"Alphabetic": "Roe^Jane"},
        "PixelSpacing": [0.5, 0.5],
        "00180050": "2.5",  # SliceThickness by tag, DS as a string
        "SeriesDescription": "edited",
    })  # fmt: skip
    series = store.get_series("1.2.3", "1.2.3.1")
    assert series is not None and len(series.instances) == 2
    for inst in series.instances:
        assert inst.metadata["PatientName"] == {"Alphabetic": "Roe^Jane", "Ideographic": "ド"}
        assert inst.metadata["PixelSpacing"] == [0.5, 0.5]
        assert inst.metadata["SliceThickness"] == 2.5
        assert inst.metadata["SeriesDescription"] == "edited"
    assert series.series_description == "edited"


def test_update_changes_typed_columns_study_values_and_display_sets(store: Store) -> None:
    store.add_instances([_instance("1", 1), _instance("1", 2), _instance("2", 1)])
    assert _derived(store) == (("CT",), 2, 3)
    store.update_metadata_for_series("1.2.3", "1.2.3.1", {
        "Modality": "MR", "SOPClassUID": ENHANCED_CT, "NumberOfFrames": "3",
        "InstanceNumber": 9,
    })  # fmt: skip
    series = store.get_series("1.2.3", "1.2.3.1")
    assert series is not None and series.modality == "MR"
    for inst in series.instances:
        assert (inst.sop_class_uid, inst.number_of_frames, inst.instance_number) == (
            ENHANCED_CT, 3, 9)  # fmt: skip
    assert _derived(store) == (("CT", "MR"), 2, 3)
    store.update_metadata_for_series("1.2.3", "1.2.3.2", {"Modality": "MR"})
    assert _derived(store) == (("MR",), 2, 3)  # CT is gone: no series has it any more
    by_series = {d.series_instance_uid: d for d in store.get_display_sets("1.2.3")}
    assert by_series["1.2.3.1"].modality == "MR"
    assert by_series["1.2.3.1"].num_image_frames == 3 and by_series["1.2.3.1"].is_multi_frame


def test_a_pull_adding_one_series_per_call_counts_every_series(store: Store) -> None:
    """addSeriesMetadata called once per series, as a series-by-series pull does."""
    for series, modality in (("1", "CT"), ("2", "PT"), ("3", "SEG")):
        store.add_series_metadata([_summary(series, modality, 2)])
        store.add_instances([_instance(series, 1, modality), _instance(series, 2, modality)])
    assert _derived(store) == (("CT", "PT", "SEG"), 3, 6)


def test_summaries_before_instances_count_what_the_server_reported(store: Store) -> None:
    store.add_series_metadata([_summary("1", "CT", 5), _summary("2", "SR", 1)])
    assert _derived(store) == (("CT", "SR"), 2, 6)
    store.add_instances([_instance("1", n) for n in range(1, 6)])
    assert _derived(store) == (("CT", "SR"), 2, 6)
    store.add_instances([_instance("2", 1, "SR")])
    assert _derived(store) == (("CT", "SR"), 2, 6)


def test_summaries_after_instances_keep_the_stored_counts(store: Store) -> None:
    store.add_instances([_instance("1", 1), _instance("1", 2), _instance("2", 1, "MR")])
    store.add_series_metadata([_summary("1", "CT", 2), _summary("3", "SR", 1)])
    assert _derived(store) == (("CT", "MR", "SR"), 3, 4)


def test_the_same_series_in_two_data_sources_counts_once(store: Store) -> None:
    store.add_instances([_instance("1", 1), _instance("1", 2)], data_source="a")
    store.add_instances([_instance("1", 1), _instance("1", 3)], data_source="b")
    assert _derived(store) == (("CT",), 1, 3)

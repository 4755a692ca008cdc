"""The cookbook: named reports over the reporting views, one registry for the CLI and the docs.

Each report answers one question with one SQL statement over the views (``v_study``,
``v_series``, ``v_instance``) or the tables, with bound parameters (``:name``). The SQL is the
same on SQLite and PostgreSQL unless a report gives a variant per database (``variants``), which
is done only where the two have no common function. ``docs/reporting.md`` is generated from this
list (``python -m repository.reporting.cookbook``), and a test runs every report on both.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import InvalidInputError, NotFoundError


@dataclass(frozen=True)
class Report:
    """A named report: the question it answers, its SQL and its parameters with defaults.

    A parameter whose default is ``None`` is required.
    """

    name: str
    question: str
    sql: str
    params: Mapping[str, Any] = field(default_factory=dict)
    variants: Mapping[str, str] = field(default_factory=dict)
    notes: str = ""

    def sql_for(self, dialect: str) -> str:
        """The statement to run on ``dialect`` (``sqlite`` or ``postgresql``)."""
        return self.variants.get(dialect, self.sql).strip()

    def bind(self, given: Mapping[str, str | Any]) -> dict[str, Any]:
        """Parameter values: the defaults, overridden by ``given`` converted to their types."""
        unknown = sorted(set(given) - set(self.params))
        if unknown:
            raise InvalidInputError(
                f"report {self.name} has no parameter {', '.join(unknown)}"
                f" (it takes: {', '.join(self.params) or 'none'})"
            )
        values = {}
        for key, default in self.params.items():
            value = given.get(key, default)
            if value is None:
                raise InvalidInputError(f"report {self.name} needs --param {key}=VALUE")
            values[key] = _convert(self.name, key, value, default)
        return values


def _convert(report: str, key: str, value: Any, default: Any) -> Any:
    if not isinstance(value, str) or default is None or isinstance(default, str):
        return value
    kind = type(default).__name__
    try:
        converted = type(default)(value)
    except ValueError:
        raise InvalidInputError(f"report {report}: {key}={value!r} is not an {kind}") from None
    if isinstance(converted, int) and not -(2**63) <= converted < 2**63:
        raise InvalidInputError(f"report {report}: {key}={value!r} is not a 64-bit {kind}")
    return converted


_PRIVATE_TAG_SQL = """
SELECT st.study_instance_uid, se.series_instance_uid, i.sop_instance_uid
FROM instance i
JOIN series se ON se.study_instance_uid = i.study_instance_uid AND se.id = i.series_id
JOIN series_list sl ON sl.study_instance_uid = se.study_instance_uid AND sl.id = se.series_list_id
JOIN study st ON st.study_instance_uid = sl.study_instance_uid AND st.id = sl.study_id
WHERE i.metadata -> {key} -> 'Value' ->> 0 = :value
ORDER BY st.study_instance_uid, se.series_instance_uid, i.sop_instance_uid
"""

REPORTS: tuple[Report, ...] = (
    Report(
        "studies-per-modality-per-month",
        "How many studies per modality per month?",
        """
SELECT substr(CAST(st.study_date AS TEXT), 1, 7) AS month, se.modality,
       COUNT(DISTINCT st.study_instance_uid) AS studies
FROM v_study st
JOIN v_series se ON se.study_instance_uid = st.study_instance_uid
WHERE st.study_date BETWEEN :since AND :until AND se.modality IS NOT NULL
GROUP BY substr(CAST(st.study_date AS TEXT), 1, 7), se.modality
ORDER BY month, se.modality
""",
        {"since": "1900-01-01", "until": "9999-12-31"},
        notes="A study counts once for each modality among its series (a CT with a SEG counts "
        "for CT and for SEG). Studies without a study date are left out.",
    ),
    Report(
        "instances-and-frames-per-sop-class",
        "How many instances and frames of each SOP class are stored?",
        """
SELECT sop_class_uid, sop_class_name, COUNT(*) AS instances, SUM(number_of_frames) AS frames
FROM v_instance
GROUP BY sop_class_uid, sop_class_name
ORDER BY instances DESC, sop_class_uid
""",
        notes="A single-frame image counts one frame; an instance without pixel data (SR, "
        "PDF, ...) counts none.",
    ),
    Report(
        "series-without-instances",
        "Which series are known (from a series summary) but have no instances stored?",
        """
SELECT study_instance_uid, series_instance_uid, data_source, modality, series_description
FROM v_series
WHERE number_of_instances = 0
ORDER BY study_instance_uid, series_instance_uid, data_source
""",
    ),
    Report(
        "studies-missing-a-claimed-modality",
        "Which studies claim a modality (ModalitiesInStudy) that none of their series has?",
        """
SELECT st.study_instance_uid, st.modalities_in_study, m.value AS missing_modality
FROM v_study st, json_each('["' || replace(st.modalities_in_study, '\\', '","') || '"]') m
WHERE NOT EXISTS (SELECT 1 FROM v_series se
                  WHERE se.study_instance_uid = st.study_instance_uid
                    AND se.modality = m.value)
ORDER BY st.study_instance_uid, missing_modality
""",
        variants={
            "postgresql": """
SELECT st.study_instance_uid, st.modalities_in_study, m.value AS missing_modality
FROM v_study st, unnest(string_to_array(st.modalities_in_study, '\\')) AS m(value)
WHERE NOT EXISTS (SELECT 1 FROM v_series se
                  WHERE se.study_instance_uid = st.study_instance_uid
                    AND se.modality = m.value)
ORDER BY st.study_instance_uid, missing_modality
"""
        },
        notes="Splitting the backslash-joined list needs `json_each` on SQLite and "
        "`unnest(string_to_array(...))` on PostgreSQL.",
    ),
    Report(
        "busiest-stations",
        "Which stations (StationName) produced the most instances?",
        """
SELECT station_name, COUNT(DISTINCT study_instance_uid) AS studies, COUNT(*) AS series,
       SUM(number_of_instances) AS instances
FROM v_series
WHERE station_name IS NOT NULL
GROUP BY station_name
ORDER BY instances DESC, station_name
LIMIT :limit
""",
        {"limit": 10},
    ),
    Report(
        "patients-with-more-than-n-studies",
        "Which patients have more than N studies?",
        """
SELECT patient_id, MIN(patient_name) AS patient_name, COUNT(*) AS studies,
       MIN(study_date) AS first_study_date, MAX(study_date) AS last_study_date
FROM v_study
WHERE patient_id IS NOT NULL
GROUP BY patient_id
HAVING COUNT(*) > :n
ORDER BY studies DESC, patient_id
""",
        {"n": 1},
    ),
    Report(
        "instances-by-private-tag",
        "Which instances carry a given value in a private tag?",
        _PRIVATE_TAG_SQL.format(key="""('$."' || :tag || '"')"""),
        {"tag": "00091001", "value": None},
        variants={"postgresql": _PRIVATE_TAG_SQL.format(key=":tag")},
        notes="Private tags are stored under their 8-hex-digit tag in DICOM JSON form "
        '(`{"vr": "LO", "Value": [...]}`); the first value is compared as text. SQLite reads a '
        "key made of digits as an array index, so it needs the quoted path `'$.\"00091001\"'`. "
        "To index one tag, see [Indexing a private tag](#indexing-a-private-tag).",
    ),
    Report(
        "ct-slice-thickness-histogram",
        "How are CT slice thicknesses distributed?",
        """
SELECT slice_thickness, COUNT(*) AS instances, COUNT(DISTINCT series_instance_uid) AS series
FROM v_instance
WHERE modality = :modality AND slice_thickness IS NOT NULL
GROUP BY slice_thickness
ORDER BY slice_thickness
""",
        {"modality": "CT"},
    ),
    Report(
        "studies-per-data-source",
        "How many studies, series and instances came from each data source?",
        """
SELECT data_source, COUNT(DISTINCT study_instance_uid) AS studies, COUNT(*) AS series,
       SUM(number_of_instances) AS instances
FROM v_series
GROUP BY data_source
ORDER BY data_source
""",
    ),
    Report(
        "series-per-manufacturer-model",
        "Which manufacturers and models produced how many series and instances?",
        """
SELECT manufacturer, manufacturer_model_name, COUNT(*) AS series,
       SUM(number_of_instances) AS instances
FROM v_series
WHERE manufacturer IS NOT NULL
GROUP BY manufacturer, manufacturer_model_name
ORDER BY series DESC, manufacturer, manufacturer_model_name
""",
    ),
    Report(
        "largest-studies",
        "Which studies have the most instances?",
        """
SELECT study_instance_uid, patient_id, study_date, modalities_in_study, number_of_series,
       number_of_instances
FROM v_study
ORDER BY number_of_instances DESC, study_instance_uid
LIMIT :limit
""",
        {"limit": 10},
    ),
    Report(
        "patient-studies",
        "What studies does a patient have?",
        """
SELECT study_instance_uid, study_date, accession_number, study_description,
       modalities_in_study, number_of_series, number_of_instances, data_sources
FROM v_study
WHERE patient_id = :patient_id
ORDER BY study_date, study_instance_uid
""",
        {"patient_id": None},
    ),
    Report(
        "instances-per-transfer-syntax",
        "In which transfer syntaxes are the instances stored?",
        """
SELECT transfer_syntax_uid, COUNT(*) AS instances
FROM v_instance
WHERE transfer_syntax_uid IS NOT NULL
GROUP BY transfer_syntax_uid
ORDER BY instances DESC, transfer_syntax_uid
""",
    ),
    Report(
        "multiframe-instances-per-modality",
        "How many multi-frame instances, and how many frames, per modality?",
        """
SELECT modality, COUNT(*) AS instances, SUM(number_of_frames) AS frames,
       MAX(number_of_frames) AS most_frames
FROM v_instance
WHERE number_of_frames > 1
GROUP BY modality
ORDER BY frames DESC, modality
""",
    ),
    Report(
        "studies-with-incomplete-patient-data",
        "Which studies lack a patient ID, patient name or study date?",
        """
SELECT study_instance_uid, patient_id, patient_name, study_date
FROM v_study
WHERE patient_id IS NULL OR patient_name IS NULL OR study_date IS NULL
ORDER BY study_instance_uid
""",
    ),
    Report(
        "body-parts-per-modality",
        "Which body parts were examined, per modality?",
        """
SELECT modality, body_part_examined, COUNT(*) AS series,
       COUNT(DISTINCT study_instance_uid) AS studies
FROM v_series
WHERE body_part_examined IS NOT NULL AND modality IS NOT NULL
GROUP BY modality, body_part_examined
ORDER BY modality, series DESC, body_part_examined
""",
    ),
)
"""Every named report, in the order the cookbook shows them."""


def get_report(name: str) -> Report:
    """The report called ``name``; :class:`NotFoundError` lists the names there are."""
    for report in REPORTS:
        if report.name == name:
            return report
    names = ", ".join(r.name for r in REPORTS)
    raise NotFoundError(f"no report named {name!r}; there are: {names}")

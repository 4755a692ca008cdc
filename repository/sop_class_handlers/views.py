"""The objects a v2 (seed-style) handler receives: OHIF's study, series and instance accessors.

The seed's example handler calls ``series.get_first_instance()``, ``study.get_data()["wadoRoot"]``,
``instance.get_data()["wadouri"]``, ``instance.get_sop_instance_uid()``,
``series.get_series_instance_uid()`` and ``study.get_study_instance_uid()`` (OHIF v2's
``StudyMetadata``, ``SeriesMetadata`` and ``InstanceMetadata``); these wrappers provide them,
in snake_case and in OHIF's camelCase, over the stored study. Every other attribute is the
wrapped model's (``series.instances``, ``study.patient_id``...).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..models import Instance, Series, Study


class _View:
    _target: Any

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target, name)


class InstanceView(_View):
    """An instance as OHIF v2's ``InstanceMetadata``."""

    def __init__(self, instance: Instance) -> None:
        self._target = self.instance = instance

    def get_data(self) -> dict[str, Any]:
        """The naturalized metadata plus ``wadouri``, ``wadoRoot`` and ``imageId``."""
        inst = self.instance
        return {
            **inst.metadata,
            "wadouri": inst.wado_uri,
            "wadoRoot": inst.wado_root,
            "imageId": inst.image_id,
        }

    def get_sop_instance_uid(self) -> str:
        """The SOP Instance UID."""
        return self.instance.sop_instance_uid

    def get_tag_value(self, keyword: str) -> Any:
        """The naturalized value of ``keyword`` (None if absent)."""
        return self.instance.metadata.get(keyword)

    getData = get_data
    getSOPInstanceUID = get_sop_instance_uid
    getTagValue = get_tag_value


class SeriesView(_View):
    """A series (limited to the instances offered to the handler) as OHIF v2's
    ``SeriesMetadata``; ``instances`` are the stored instances, in display order."""

    def __init__(self, series: Series, instances: Sequence[Instance]) -> None:
        self._target = series
        self.series = series
        self.instances = tuple(instances)

    def get_first_instance(self) -> InstanceView:
        """The first instance offered."""
        return InstanceView(self.instances[0])

    def get_instances(self) -> list[InstanceView]:
        """All instances offered."""
        return [InstanceView(i) for i in self.instances]

    def get_instance_count(self) -> int:
        """The number of instances offered."""
        return len(self.instances)

    def get_series_instance_uid(self) -> str:
        """The Series Instance UID."""
        return self.series.series_instance_uid

    def get_data(self) -> dict[str, Any]:
        """The series-level metadata."""
        return {**self.series.metadata, "wadoRoot": self.series.wado_root}

    getFirstInstance = get_first_instance
    getInstances = get_instances
    getInstanceCount = get_instance_count
    getSeriesInstanceUID = get_series_instance_uid
    getData = get_data


class StudyView(_View):
    """A study as OHIF v2's ``StudyMetadata``; ``get_data()`` carries the series' data source
    roots (``wadoRoot``, ``wadoUriRoot``)."""

    def __init__(self, study: Study, series: Series, wado_uri_root: str | None) -> None:
        self._target = self.study = study
        self._series = series
        self._wado_uri_root = wado_uri_root

    def get_data(self) -> dict[str, Any]:
        """The study-level metadata and the data source's ``wadoRoot``/``wadoUriRoot``."""
        return {
            **self.study.metadata,
            "StudyInstanceUID": self.study.study_instance_uid,
            "wadoRoot": self._series.wado_root,
            "wadoUriRoot": self._wado_uri_root,
        }

    def get_study_instance_uid(self) -> str:
        """The Study Instance UID."""
        return self.study.study_instance_uid

    getData = get_data
    getStudyInstanceUID = get_study_instance_uid

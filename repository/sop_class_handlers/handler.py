"""The SOP class handler interface and the context handlers build display sets with.

A handler is an ``id``, the ``sop_class_uids`` it claims and a function
``get_display_sets_from_series(instances, context)`` that receives the instances of one series
having those SOP classes (in display order) and returns display sets; returning none declines,
and the instances go on to later handlers (OHIF v3). The seed's v2 form,
``get_display_set_from_series(series, study, dicom_web_client, authorization_headers)`` returning
one display set as a dict, is adapted to the same pipeline by :func:`.adapters.as_handler`.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import EllipsisType, MappingProxyType
from typing import Any

from ..errors import InvalidValueError
from ..models import Instance, Series, Study
from ..validation import as_int, is_uid
from .display_set import DisplaySet, display_set_uid

HandlerFunction = Callable[[Sequence[Instance], "HandlerContext"], Iterable[DisplaySet] | None]
"""``get_display_sets_from_series(instances, context) -> display sets`` (empty: declined)."""


class InvalidHandlerError(InvalidValueError):
    """A SOP class handler cannot be registered (no id, malformed UID, duplicate id...)."""


@dataclass(frozen=True)
class SopClassHandler:
    """A SOP class handler module: ``id``, claimed ``sop_class_uids`` and the display-set function.

    ``sop_class_uids`` keeps the order given (duplicates removed); membership tests use the
    frozen set ``claims``.
    """

    id: str
    sop_class_uids: tuple[str, ...]
    get_display_sets_from_series: HandlerFunction

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id.strip():
            raise InvalidHandlerError(
                f"a SOP class handler needs a non-empty string id, got {self.id!r}"
            )
        uids = self.sop_class_uids
        if isinstance(uids, str) or not isinstance(uids, Iterable):
            raise InvalidHandlerError(
                f"handler {self.id!r}: sop_class_uids must be a list of UIDs, got {uids!r}"
            )
        uids = tuple(dict.fromkeys(str(u) for u in uids))
        if not uids:
            raise InvalidHandlerError(f"handler {self.id!r} claims no SOP class UIDs")
        for u in uids:
            if not is_uid(u):
                raise InvalidHandlerError(f"handler {self.id!r}: {u!r} is not a valid UID")
        if not callable(self.get_display_sets_from_series):
            raise InvalidHandlerError(
                f"handler {self.id!r}: get_display_sets_from_series must be callable"
            )
        object.__setattr__(self, "sop_class_uids", uids)
        object.__setattr__(self, "claims", frozenset(uids))

    claims: frozenset[str] = dataclasses.field(init=False, repr=False, compare=False)


class HandlerContext:
    """What a handler gets beside its instances: the series, the study, and display-set helpers."""

    def __init__(
        self,
        study: Study,
        series: Series,
        handler_id: str,
        *,
        wado_uri: str | None,
        authorization_headers: Mapping[str, str] | None,
        dicom_web_client: Any,
        series_of_instance: Callable[[str], str | None],
    ) -> None:
        self.study = study
        self.series = series
        self.handler_id = handler_id
        self.wado_uri = wado_uri
        self.authorization_headers = authorization_headers
        self.dicom_web_client = dicom_web_client
        self._series_of_instance = series_of_instance

    @property
    def where(self) -> str:
        """``handler 'id' on series <uid>``, for error messages."""
        return f"handler {self.handler_id!r} on series {self.series.series_instance_uid}"

    def series_of_instance(self, sop_instance_uid: str) -> str | None:
        """The SeriesInstanceUID of an instance of this study (same data source), if stored."""
        return self._series_of_instance(sop_instance_uid)

    def display_set(
        self,
        instances: Sequence[Instance],
        *,
        plugin: str,
        representative: Instance | None = None,
        modality: str | None = None,
        label: str | None = None,
        is_reconstructable: bool = False,
        is_derived: bool = False,
        referenced_series_instance_uid: str | None = None,
        key: str = "",
        extras: Mapping[str, Any] | None = None,
        wado_root: str | None = None,
        wado_uri: str | None = None,
        num_image_frames: int | EllipsisType | None = ...,
        is_multi_frame: bool | None = None,
    ) -> DisplaySet:
        """A display set of ``instances`` of this series, with a deterministic UID.

        Series fields come from the series; ``representative`` defaults to the first instance;
        frame counts, unless given (None: no frame count), from the instances' NumberOfFrames.
        """
        if not instances:
            raise ValueError(f"handler {self.handler_id!r}: a display set needs instances")
        series, rep = self.series, representative or instances[0]
        modality = modality or series.modality or _text(rep.metadata.get("Modality"))
        if num_image_frames is ...:
            num_image_frames = sum(max(1, i.number_of_frames or 1) for i in instances)
        if is_multi_frame is None:
            is_multi_frame = any((i.number_of_frames or 1) > 1 for i in instances)
        return DisplaySet(
            display_set_instance_uid=self._uid(instances, key),
            sop_class_handler_id=self.handler_id,
            plugin=plugin,
            modality=modality,
            sop_instance_uid=rep.sop_instance_uid,
            wado_root=wado_root if wado_root is not None else series.wado_root,
            wado_uri=wado_uri if wado_uri is not None else (rep.wado_uri or self.wado_uri),
            instances=tuple(instances),
            num_image_frames=num_image_frames,
            is_multi_frame=is_multi_frame,
            is_reconstructable=is_reconstructable,
            is_derived_display_set=is_derived,
            referenced_series_instance_uid=referenced_series_instance_uid,
            label=label if label is not None else default_label(series, modality),
            extras=MappingProxyType(dict(extras or {})),
            authorization_headers=self._headers(),
            **_series_fields(series),
        )

    def _uid(self, instances: Sequence[Instance], key: str) -> str:
        series = self.series
        return display_set_uid(
            series.study_instance_uid,
            series.series_instance_uid,
            series.data_source,
            self.handler_id,
            (i.sop_instance_uid for i in instances),
            key,
        )

    def _headers(self) -> Mapping[str, str] | None:
        headers = self.authorization_headers
        return MappingProxyType(dict(headers)) if headers else None

    def from_mapping(self, values: Mapping[str, Any], instances: Sequence[Instance]) -> DisplaySet:
        """A display set from a seed-style dict (camelCase or snake_case keys).

        Known keys set the fields; ``displaySetInstanceUid`` is replaced by the deterministic
        UID, ``authorizationHeaders`` by the caller's; other keys go to ``extras``.
        """
        fields = {_snake(k): v for k, v in values.items()}
        chosen = fields.pop("instances", None)
        if isinstance(chosen, list | tuple):
            instances = _resolve_instances(chosen, instances) or instances
        rep_uid = fields.pop("sop_instance_uid", None)
        representative = next((i for i in instances if i.sop_instance_uid == rep_uid), None)
        for ignored in (
            "display_set_instance_uid",
            "authorization_headers",
            "study_instance_uid",
            "series_instance_uid",
            "sop_class_handler_id",
        ):
            fields.pop(ignored, None)
        frames = as_int(fields.pop("num_image_frames", None))
        multi = fields.pop("is_multi_frame", None)
        return self.display_set(
            instances,
            plugin=str(fields.pop("plugin", None) or "cornerstone"),
            representative=representative,
            modality=_text(fields.pop("modality", None)),
            label=_text(fields.pop("label", None)),
            is_reconstructable=bool(fields.pop("is_reconstructable", False)),
            is_derived=bool(fields.pop("is_derived_display_set", False)),
            referenced_series_instance_uid=_text(
                fields.pop("referenced_series_instance_uid", None)
            ),
            wado_root=_text(fields.pop("wado_root", None)),
            wado_uri=_text(fields.pop("wado_uri", None)),
            num_image_frames=... if frames is None else frames,
            is_multi_frame=None if multi is None else bool(multi),
            extras=fields,
        )


def _series_fields(series: Series) -> dict[str, Any]:
    return {
        "study_instance_uid": series.study_instance_uid,
        "series_instance_uid": series.series_instance_uid,
        "series_number": series.series_number,
        "series_description": series.series_description,
        "series_date": series.series_date,
        "series_time": series.series_time,
        "data_source": series.data_source,
    }


def default_label(series: Series, modality: str | None) -> str:
    """A thumbnail label: the series description, else modality and series number."""
    if series.series_description:
        return series.series_description
    parts = [p for p in (modality, series.series_number) if p is not None]
    return " ".join(str(p) for p in parts)


def _text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, list):
        return _text(value[0]) if value else None
    return str(value)


def _snake(key: str) -> str:
    key = key.replace("UID", "Uid").replace("ID", "Id")
    key = re.sub(r"(?<=[A-Z])(?=[A-Z][a-z])", "_", key)
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", key).lower()


def _resolve_instances(chosen: Sequence[Any], offered: Sequence[Instance]) -> list[Instance]:
    """The offered instances a returned display set names: as instances, wrappers holding one
    (``.instance``), SOP Instance UIDs, or naturalized dicts with a SOPInstanceUID."""
    by_uid = {i.sop_instance_uid: i for i in offered}
    out = []
    for item in chosen:
        item = getattr(item, "instance", item)
        if isinstance(item, Instance):
            uid: Any = item.sop_instance_uid
        elif isinstance(item, Mapping):
            uid = item.get("SOPInstanceUID") or item.get("sop_instance_uid")
        else:
            uid = item
        if isinstance(uid, str) and uid in by_uid:
            out.append(by_uid[uid])
    return out

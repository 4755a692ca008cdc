"""The SOP class handler interface, the context handlers build display sets with, and adapters.

A handler is an ``id``, the ``sop_class_uids`` it claims and a function
``get_display_sets_from_series(instances, context)`` that receives the instances of one series
having those SOP classes (in display order) and returns display sets; returning none declines,
and the instances go on to later handlers (OHIF v3). The seed's v2 form,
``get_display_set_from_series(series, study, dicom_web_client, authorization_headers)`` returning
one display set as a dict, is adapted to the same pipeline by :func:`as_handler`.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
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
        num_image_frames: int | None = None,
        is_multi_frame: bool | None = None,
    ) -> DisplaySet:
        """A display set of ``instances`` of this series, with a deterministic UID.

        Series fields come from the series; ``representative`` defaults to the first instance;
        frame counts from the instances' NumberOfFrames.
        """
        if not instances:
            raise ValueError(f"handler {self.handler_id!r}: a display set needs instances")
        series = self.series
        rep = representative or instances[0]
        frames = sum(max(1, i.number_of_frames or 1) for i in instances)
        multi = any((i.number_of_frames or 1) > 1 for i in instances)
        modality = modality or series.modality or _text(rep.metadata.get("Modality"))
        return DisplaySet(
            display_set_instance_uid=display_set_uid(
                series.study_instance_uid,
                series.series_instance_uid,
                series.data_source,
                self.handler_id,
                (i.sop_instance_uid for i in instances),
                key,
            ),
            sop_class_handler_id=self.handler_id,
            plugin=plugin,
            modality=modality,
            study_instance_uid=series.study_instance_uid,
            series_instance_uid=series.series_instance_uid,
            sop_instance_uid=rep.sop_instance_uid,
            series_number=series.series_number,
            series_description=series.series_description,
            series_date=series.series_date,
            series_time=series.series_time,
            wado_root=wado_root if wado_root is not None else series.wado_root,
            wado_uri=wado_uri if wado_uri is not None else (rep.wado_uri or self.wado_uri),
            data_source=series.data_source,
            instances=tuple(instances),
            num_image_frames=frames if num_image_frames is None else num_image_frames,
            is_multi_frame=multi if is_multi_frame is None else is_multi_frame,
            is_reconstructable=is_reconstructable,
            is_derived_display_set=is_derived,
            referenced_series_instance_uid=referenced_series_instance_uid,
            label=label if label is not None else default_label(series, modality),
            extras=MappingProxyType(dict(extras or {})),
            authorization_headers=(
                MappingProxyType(dict(self.authorization_headers))
                if self.authorization_headers
                else None
            ),
        )

    def from_mapping(self, values: Mapping[str, Any], instances: Sequence[Instance]) -> DisplaySet:
        """A display set from a seed-style dict (camelCase or snake_case keys).

        Known keys set the fields; ``displaySetInstanceUid`` is replaced by the deterministic
        UID, ``authorizationHeaders`` by the caller's; other keys go to ``extras``.
        """
        fields = {_snake(k): v for k, v in values.items()}
        chosen = fields.pop("instances", None)
        if chosen is not None:
            instances = [i for i in chosen if isinstance(i, Instance)] or instances
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
            num_image_frames=frames,
            is_multi_frame=None if multi is None else bool(multi),
            extras=fields,
        )


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
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", key).lower()


# ---------------------------------------------------------------------------- adapters

_ID_KEYS = ("id", "name")
_UIDS_KEYS = ("sop_class_uids", "sopClassUids", "sopClassUIDs")
_V3_KEYS = ("get_display_sets_from_series", "getDisplaySetsFromSeries")
_V2_KEYS = ("get_display_set_from_series", "getDisplaySetFromSeries")


def _member(obj: Any, keys: Sequence[str]) -> Any:
    for key in keys:
        if isinstance(obj, Mapping):
            if key in obj:
                return obj[key]
        elif hasattr(obj, key):
            return getattr(obj, key)
    return None


def is_handler_like(obj: Any) -> bool:
    """True if ``obj`` looks like a handler (has an id or SOP class UIDs and a function)."""
    if isinstance(obj, SopClassHandler):
        return True
    has_fn = _member(obj, _V3_KEYS) is not None or _member(obj, _V2_KEYS) is not None
    return has_fn or _member(obj, _UIDS_KEYS) is not None


def as_handler(obj: Any) -> SopClassHandler:
    """A :class:`SopClassHandler` from a handler, or from an object or dict in v3 or v2 form.

    v3: ``id`` (or ``name``), ``sop_class_uids``, ``get_display_sets_from_series(instances[,
    context])``. v2 (the seed): ``id``, ``sop_class_uids``,
    ``get_display_set_from_series(series, study, dicom_web_client, authorization_headers)``
    returning one display set (a dict or :class:`DisplaySet`) or None. camelCase names work too.
    """
    if isinstance(obj, SopClassHandler):
        return obj
    handler_id = _member(obj, _ID_KEYS)
    uids = _member(obj, _UIDS_KEYS)
    v3 = _member(obj, _V3_KEYS)
    v2 = _member(obj, _V2_KEYS)
    if v3 is None and v2 is None:
        raise InvalidHandlerError(
            f"{obj!r} is not a SOP class handler: it has neither get_display_sets_from_series "
            "nor get_display_set_from_series"
        )
    if uids is None:
        raise InvalidHandlerError(f"handler {handler_id!r} has no sop_class_uids")
    function = _adapt_v3(v3) if v3 is not None else _adapt_v2(v2)
    return SopClassHandler(handler_id, uids, function)


def _positional_arity(fn: Callable[..., Any]) -> int:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 2
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return 2
    return sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params)


def _adapt_v3(fn: Callable[..., Any]) -> HandlerFunction:
    if not callable(fn):
        raise InvalidHandlerError(f"get_display_sets_from_series {fn!r} is not callable")
    if _positional_arity(fn) >= 2:
        return fn

    def one_argument(instances: Sequence[Instance], context: HandlerContext) -> Any:
        return fn(instances)

    return one_argument


def _adapt_v2(fn: Callable[..., Any]) -> HandlerFunction:
    if not callable(fn):
        raise InvalidHandlerError(f"get_display_set_from_series {fn!r} is not callable")

    def v2(instances: Sequence[Instance], context: HandlerContext) -> list[DisplaySet]:
        series = dataclasses.replace(context.series, instances=tuple(instances))
        result = fn(series, context.study, context.dicom_web_client, context.authorization_headers)
        if result is None:
            return []
        items = result if isinstance(result, list | tuple) else [result]
        return [
            item if isinstance(item, DisplaySet) else context.from_mapping(item, instances)
            for item in items
        ]

    return v2

"""Turn what users write into :class:`SopClassHandler` objects.

Accepted: a handler; an object or dict in OHIF v3 form (``id``/``name``, ``sop_class_uids``,
``get_display_sets_from_series(instances[, context])`` returning display sets or plain dicts);
in the seed's v2 form (``get_display_set_from_series(series, study, dicom_web_client,
authorization_headers)`` returning one display set or dict, called with OHIF's accessor objects
from :mod:`.views`); and an OHIF-style module, an object with ``get_sop_class_handler_module()``
(or ``getSopClassHandlerModule``) returning one handler or a list of them. camelCase names work.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..models import Instance
from .display_set import DisplaySet
from .handler import HandlerContext, HandlerFunction, InvalidHandlerError, SopClassHandler
from .views import SeriesView, StudyView

_ID_KEYS = ("id", "name")
_UIDS_KEYS = ("sop_class_uids", "sopClassUids", "sopClassUIDs")
_V3_KEYS = ("get_display_sets_from_series", "getDisplaySetsFromSeries")
_V2_KEYS = ("get_display_set_from_series", "getDisplaySetFromSeries")
_MODULE_KEYS = ("get_sop_class_handler_module", "getSopClassHandlerModule")


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


def is_module(obj: Any) -> bool:
    """True for an OHIF-style module: it has ``get_sop_class_handler_module``."""
    return not is_handler_like(obj) and callable(_member(obj, _MODULE_KEYS))


def handlers_of(obj: Any) -> list[SopClassHandler]:
    """The handlers ``obj`` stands for: itself, or all handlers of a module (in its order)."""
    if not is_module(obj):
        return [as_handler(obj)]
    factory = _member(obj, _MODULE_KEYS)
    required = _required_positional(factory)
    # OHIF passes {servicesManager, commandsManager, ...}; there are no such services here.
    produced = factory() if required == 0 else factory({})
    items = produced if isinstance(produced, list | tuple) else [produced]
    try:
        return [as_handler(item) for item in items]
    except InvalidHandlerError as error:
        raise InvalidHandlerError(f"SOP class handler module {obj!r}: {error}") from error


def as_handler(obj: Any) -> SopClassHandler:
    """A :class:`SopClassHandler` from a handler, or from an object or dict in v3 or v2 form.

    Raises :class:`InvalidHandlerError` naming what is missing.
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


def _required_positional(fn: Callable[..., Any]) -> int:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 0
    return sum(
        p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
        for p in params
    )


def _positional_arity(fn: Callable[..., Any]) -> int:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 2
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return 2
    return sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params)


def _display_sets(
    result: Any, instances: Sequence[Instance], context: HandlerContext
) -> list[DisplaySet]:
    """A handler's result as display sets: dicts (OHIF's plain objects) are converted."""
    if result is None:
        return []
    items = result if isinstance(result, list | tuple) else [result]
    return [
        context.from_mapping(item, instances) if isinstance(item, Mapping) else item
        for item in items
    ]


def _adapt_v3(fn: Callable[..., Any]) -> HandlerFunction:
    if not callable(fn):
        raise InvalidHandlerError(f"get_display_sets_from_series {fn!r} is not callable")
    one_argument = _positional_arity(fn) < 2

    def v3(instances: Sequence[Instance], context: HandlerContext) -> list[DisplaySet]:
        result = fn(instances) if one_argument else fn(instances, context)
        return _display_sets(result, instances, context)

    return v3


def _adapt_v2(fn: Callable[..., Any]) -> HandlerFunction:
    if not callable(fn):
        raise InvalidHandlerError(f"get_display_set_from_series {fn!r} is not callable")

    def v2(instances: Sequence[Instance], context: HandlerContext) -> list[DisplaySet]:
        series = SeriesView(context.series, instances)
        study = StudyView(context.study, context.series, context.wado_uri)
        result = fn(series, study, context.dicom_web_client, context.authorization_headers)
        return _display_sets(result, instances, context)

    return v2

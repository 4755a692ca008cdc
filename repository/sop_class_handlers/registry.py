"""The ordered handler list: built-ins, plug-ins from entry points, or handlers passed in."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from . import derived, documents, microscopy, reports, stack, video, waveform
from .adapters import handlers_of, is_handler_like
from .handler import InvalidHandlerError, SopClassHandler

log = logging.getLogger("repository.sop_class_handlers")

ENTRY_POINT_GROUP = "repository.sop_class_handlers"
"""Entry-point group third-party packages register handlers in."""

BUILTIN_HANDLERS: tuple[SopClassHandler, ...] = (
    # OHIF 3.13.2's basic viewer (@ohif/mode-longitudinal, modes/basic/src/index.tsx), in order
    video.HANDLER,
    waveform.HANDLER,
    derived.SEG_HANDLER,
    derived.PARAMETRIC_MAP_HANDLER,
    stack.HANDLER,
    microscopy.HANDLER,
    documents.HANDLER,
    reports.SR_3D_HANDLER,
    reports.SR_HANDLER,
    derived.RTSTRUCT_HANDLER,
    # ours: OHIF's basic viewer has no handler for these classes
    derived.KO_HANDLER,
    derived.PRESENTATION_STATE_HANDLER,
)
"""The built-in handlers in the order they are offered instances (OHIF's basic viewer's)."""

OHIF_HANDLER_IDS: dict[str, str] = {
    "video": "@ohif/extension-dicom-video.sopClassHandlerModule.dicom-video",
    "ecg": "@ohif/extension-cornerstone.sopClassHandlerModule.DicomEcgSopClassHandler",
    "seg": "@ohif/extension-cornerstone-dicom-seg.sopClassHandlerModule.dicom-seg",
    "parametric-map": "@ohif/extension-cornerstone-dicom-pmap.sopClassHandlerModule.dicom-pmap",
    "stack": "@ohif/extension-default.sopClassHandlerModule.stack",
    "whole-slide-microscopy": (
        "@ohif/extension-cornerstone.sopClassHandlerModule.DicomMicroscopySopClassHandler"
    ),
    "pdf": "@ohif/extension-dicom-pdf.sopClassHandlerModule.dicom-pdf",
    "sr-3d": "@ohif/extension-cornerstone-dicom-sr.sopClassHandlerModule.dicom-sr-3d",
    "sr": "@ohif/extension-cornerstone-dicom-sr.sopClassHandlerModule.dicom-sr",
    "rtstruct": "@ohif/extension-cornerstone-dicom-rt.sopClassHandlerModule.dicom-rt",
    "unsupported": "unsupported",
}
"""Our built-in handler ids and OHIF's ``SOPClassHandlerId`` for the same handler."""

HandlerLike = SopClassHandler | Any
"""A handler, or an object or dict in the v3 or the seed's v2 form (see ``as_handler``)."""


class HandlerRegistry:
    """An ordered list of handlers with unique ids; order decides who is offered instances first."""

    def __init__(self, handlers: Iterable[HandlerLike] = ()) -> None:
        self._handlers: list[SopClassHandler] = []
        for handler in handlers:
            self.register(handler)

    def register(self, handler: HandlerLike, *, before: str | None = None) -> list[SopClassHandler]:
        """Add a handler, or all handlers of an OHIF-style module, at the end or before the
        handler with id ``before``; returns the handlers added, in order.

        Raises :class:`InvalidHandlerError` for an invalid handler or a duplicate id (and then
        adds none of them).
        """
        added = handlers_of(handler)
        ids = [h.id for h in added]
        for handler_id in ids:
            if handler_id in self.ids or ids.count(handler_id) > 1:
                raise InvalidHandlerError(f"a handler with id {handler_id!r} is already registered")
        index = len(self._handlers) if before is None else self.ids.index(self.get(before).id)
        self._handlers[index:index] = added
        return added

    @property
    def ids(self) -> list[str]:
        """Handler ids in order."""
        return [h.id for h in self._handlers]

    def get(self, handler_id: str) -> SopClassHandler:
        """The handler with this id; raises :class:`InvalidHandlerError` if there is none."""
        for handler in self._handlers:
            if handler.id == handler_id:
                return handler
        known = ", ".join(self.ids)
        raise InvalidHandlerError(f"no SOP class handler with id {handler_id!r} (known: {known})")

    def resolve(self, handlers: Iterable[str | HandlerLike]) -> tuple[SopClassHandler, ...]:
        """Handlers for a call: ids are looked up here, handler objects are checked; ids unique."""
        out: list[SopClassHandler] = []
        for item in handlers:
            for handler in [self.get(item)] if isinstance(item, str) else handlers_of(item):
                if handler.id in {h.id for h in out}:
                    raise InvalidHandlerError(f"handler id {handler.id!r} is listed twice")
                out.append(handler)
        return tuple(out)

    def __iter__(self) -> Iterator[SopClassHandler]:
        return iter(tuple(self._handlers))

    def __len__(self) -> int:
        return len(self._handlers)


def _from_entry_point(ep: EntryPoint) -> list[SopClassHandler]:
    where = f"entry point {ep.name!r} ({ep.value}) in group {ENTRY_POINT_GROUP!r}"
    try:
        obj = ep.load()
    except Exception as error:
        raise InvalidHandlerError(f"cannot load {where}: {error}") from error
    if not is_handler_like(obj) and callable(obj):
        obj = obj()  # a module factory, like OHIF's getSopClassHandlerModule()
    items = obj if isinstance(obj, list | tuple) else [obj]
    try:
        return [h for item in items for h in handlers_of(item)]
    except InvalidHandlerError as error:
        raise InvalidHandlerError(f"{where}: {error}") from error


def plugin_handlers() -> list[SopClassHandler]:
    """Handlers that installed packages register in the ``repository.sop_class_handlers`` group."""
    found: list[SopClassHandler] = []
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        found.extend(_from_entry_point(ep))
    return found


def default_registry() -> HandlerRegistry:
    """Plug-in handlers first (they may take SOP classes before the built-ins), then built-ins."""
    registry = HandlerRegistry(plugin_handlers())
    for handler in BUILTIN_HANDLERS:
        registry.register(handler)
    return registry

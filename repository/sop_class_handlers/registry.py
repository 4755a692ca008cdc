"""The ordered handler list: built-ins, plug-ins from entry points, or handlers passed in."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from . import derived, documents, microscopy, reports, stack, video
from .handler import InvalidHandlerError, SopClassHandler, as_handler, is_handler_like

log = logging.getLogger("repository.sop_class_handlers")

ENTRY_POINT_GROUP = "repository.sop_class_handlers"
"""Entry-point group third-party packages register handlers in."""

BUILTIN_HANDLERS: tuple[SopClassHandler, ...] = (
    video.HANDLER,  # before stack: it takes the secondary captures that are videos
    documents.HANDLER,
    reports.SR_HANDLER,
    reports.SR_3D_HANDLER,
    derived.SEG_HANDLER,
    derived.RTSTRUCT_HANDLER,
    derived.PARAMETRIC_MAP_HANDLER,
    microscopy.HANDLER,
    derived.KO_HANDLER,
    derived.PRESENTATION_STATE_HANDLER,
    stack.HANDLER,
)
"""The built-in handlers in the order they are offered instances."""

HandlerLike = SopClassHandler | Any
"""A handler, or an object or dict in the v3 or the seed's v2 form (see ``as_handler``)."""


class HandlerRegistry:
    """An ordered list of handlers with unique ids; order decides who is offered instances first."""

    def __init__(self, handlers: Iterable[HandlerLike] = ()) -> None:
        self._handlers: list[SopClassHandler] = []
        for handler in handlers:
            self.register(handler)

    def register(self, handler: HandlerLike, *, before: str | None = None) -> SopClassHandler:
        """Add a handler at the end, or before the handler with id ``before``.

        Raises :class:`InvalidHandlerError` for an invalid handler or a duplicate id.
        """
        checked = as_handler(handler)
        if checked.id in self.ids:
            raise InvalidHandlerError(f"a handler with id {checked.id!r} is already registered")
        index = len(self._handlers) if before is None else self.ids.index(self.get(before).id)
        self._handlers.insert(index, checked)
        return checked

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
            handler = self.get(item) if isinstance(item, str) else as_handler(item)
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
        return [as_handler(item) for item in items]
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

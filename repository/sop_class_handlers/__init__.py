"""SOP class handler modules: build display sets from a study stored in the database.

Use :meth:`repository.Store.get_display_sets`; write a handler as a :class:`SopClassHandler`
(or in the seed's dict form) and pass it in, register it on ``store.handlers``, or publish it in
the ``repository.sop_class_handlers`` entry-point group.
"""

from .display_set import UNSUPPORTED_HANDLER_ID, DisplaySet, display_set_uid
from .handler import (
    HandlerContext,
    HandlerFunction,
    InvalidHandlerError,
    SopClassHandler,
    as_handler,
)
from .pipeline import build_display_sets
from .registry import (
    BUILTIN_HANDLERS,
    ENTRY_POINT_GROUP,
    HandlerRegistry,
    default_registry,
    plugin_handlers,
)

__all__ = [
    "BUILTIN_HANDLERS",
    "ENTRY_POINT_GROUP",
    "UNSUPPORTED_HANDLER_ID",
    "DisplaySet",
    "HandlerContext",
    "HandlerFunction",
    "HandlerRegistry",
    "InvalidHandlerError",
    "SopClassHandler",
    "as_handler",
    "build_display_sets",
    "default_registry",
    "display_set_uid",
    "plugin_handlers",
]

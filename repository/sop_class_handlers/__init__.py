"""SOP class handler modules: build display sets from a study stored in the database.

Use :meth:`repository.Store.get_display_sets`; write a handler as a :class:`SopClassHandler`
(or in OHIF's v3 or the seed's v2 form, or as an OHIF-style module) and pass it in, register it
on ``store.handlers``, or publish it in the ``repository.sop_class_handlers`` entry-point group.
The built-in handlers follow OHIF 3.13.2's basic viewer (see :mod:`.registry`).
"""

from .adapters import as_handler
from .display_set import UNSUPPORTED_HANDLER_ID, DisplaySet, display_set_uid
from .handler import HandlerContext, HandlerFunction, InvalidHandlerError, SopClassHandler
from .pipeline import build_display_sets, display_set_image_ids, study_display_sets
from .registry import (
    BUILTIN_HANDLERS,
    ENTRY_POINT_GROUP,
    OHIF_HANDLER_IDS,
    HandlerRegistry,
    default_registry,
    plugin_handlers,
)

__all__ = [
    "BUILTIN_HANDLERS",
    "ENTRY_POINT_GROUP",
    "OHIF_HANDLER_IDS",
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
    "display_set_image_ids",
    "display_set_uid",
    "plugin_handlers",
    "study_display_sets",
]

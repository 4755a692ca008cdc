"""Display-set labels as OHIF's handlers write them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import jsvalues as js


def series_label(md: Mapping[str, Any], modality: Any) -> str:
    """``SeriesDescription || `Series ${SeriesNumber} - ${Modality}``` (OHIF's handlers).

    A missing series number prints as ``undefined`` and an empty one (stored as null) as
    ``null``, as in OHIF.
    """
    description = md.get("SeriesDescription")
    if js.truthy(description):
        return js.template(description)
    number = js.template(md["SeriesNumber"]) if "SeriesNumber" in md else "undefined"
    if "SeriesNumber" in md and md["SeriesNumber"] is None:
        number = "null"
    return f"Series {number} - {js.template(modality)}"


def text(value: Any) -> str | None:
    """A naturalized value as display text (first value of a list), None when empty."""
    if isinstance(value, list):
        value = value[0] if value else None
    return None if value is None or value == "" else js.template(value)

"""Display-set labels as OHIF's handlers write them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import jsvalues as js


def series_label(md: Mapping[str, Any], modality: Any) -> str:
    """``SeriesDescription || `Series ${SeriesNumber} - ${Modality}``` (OHIF's handlers).

    A missing series number prints as ``undefined``, as in OHIF.
    """
    description = md.get("SeriesDescription")
    if js.truthy(description):
        return js.template(description)
    return f"Series {js.template(md.get('SeriesNumber'))} - {js.template(modality)}"


def text(value: Any) -> str | None:
    """A naturalized value as display text (first value of a list), None when empty."""
    if isinstance(value, list):
        value = value[0] if value else None
    return None if value is None or value == "" else js.template(value)

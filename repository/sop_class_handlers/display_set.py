"""The display set: what a viewer shows as one thumbnail, built by a SOP class handler."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ..models import Instance

_EMPTY: Mapping[str, Any] = MappingProxyType({})


def display_set_uid(
    study_uid: str,
    series_uid: str,
    data_source: str,
    handler_id: str,
    sop_instance_uids: Iterable[str],
    key: str = "",
) -> str:
    """A deterministic DICOM UID (``2.25.<n>``) for a display set.

    The same study, series, data source, handler, instances (in any order) and ``key`` give the
    same UID in every process and every run; ``key`` tells apart several display sets a handler
    makes from the same instances.
    """
    digest = hashlib.sha256()
    for part in (study_uid, series_uid, data_source, handler_id, key, *sorted(sop_instance_uids)):
        digest.update(part.encode())
        digest.update(b"\0")
    # 2.25 + a decimal of at most 39 digits keeps the UID within 64 characters (PS3.5 B.2).
    return f"2.25.{int.from_bytes(digest.digest()[:16], 'big')}"


@dataclass(frozen=True)
class DisplaySet:
    """One display set (OHIF's ``displaySet``), immutable; build it with ``HandlerContext``.

    ``plugin`` names the viewer that shows it (``"cornerstone"``, ``"html"``, ...). ``instances``
    are in display order and ``sop_instance_uid`` is the representative instance.
    ``authorization_headers`` are the caller's, copied here at call time; they are never stored
    and are left out of ``repr`` and :meth:`to_json`. ``num_image_frames`` is None where OHIF's
    handler sets no frame count (SEG, RTSTRUCT, SR, parametric map, unsupported).
    ``reconstructable_from_reference`` says ``is_reconstructable`` was taken from the display set
    this one references (OHIF's SEG and RTSTRUCT handlers).
    """

    display_set_instance_uid: str
    sop_class_handler_id: str
    plugin: str
    modality: str | None
    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str | None
    series_number: int | None
    series_description: str | None
    series_date: dt.date | None
    series_time: str | None
    wado_root: str | None
    wado_uri: str | None
    data_source: str
    instances: tuple[Instance, ...] = field(repr=False)
    num_image_frames: int | None
    is_multi_frame: bool
    is_reconstructable: bool
    is_derived_display_set: bool
    referenced_series_instance_uid: str | None
    label: str
    extras: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    authorization_headers: Mapping[str, str] | None = field(default=None, repr=False)
    reconstructable_from_reference: bool = field(default=False, repr=False)

    @property
    def sop_instance_uids(self) -> tuple[str, ...]:
        """The instances' SOP Instance UIDs, in display order."""
        return tuple(i.sop_instance_uid for i in self.instances)

    @property
    def image_ids(self) -> tuple[str, ...]:
        """The instances' imageIds, in display order (one per instance, not per frame)."""
        return tuple(i.image_id for i in self.instances)

    @property
    def is_unsupported(self) -> bool:
        """True for the fallback display set of instances no handler took."""
        return self.sop_class_handler_id == UNSUPPORTED_HANDLER_ID

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (snake_case keys; instances as SOP Instance UIDs and imageIds)."""
        return {
            "display_set_instance_uid": self.display_set_instance_uid,
            "sop_class_handler_id": self.sop_class_handler_id,
            "plugin": self.plugin,
            "modality": self.modality,
            "study_instance_uid": self.study_instance_uid,
            "series_instance_uid": self.series_instance_uid,
            "sop_instance_uid": self.sop_instance_uid,
            "series_number": self.series_number,
            "series_description": self.series_description,
            "series_date": self.series_date.isoformat() if self.series_date else None,
            "series_time": self.series_time,
            "wado_root": self.wado_root,
            "wado_uri": self.wado_uri,
            "data_source": self.data_source,
            "num_image_frames": self.num_image_frames,
            "is_multi_frame": self.is_multi_frame,
            "is_reconstructable": self.is_reconstructable,
            "is_derived_display_set": self.is_derived_display_set,
            "referenced_series_instance_uid": self.referenced_series_instance_uid,
            "label": self.label,
            "extras": dict(self.extras),
            "instances": [
                {"sop_instance_uid": i.sop_instance_uid, "image_id": i.image_id}
                for i in self.instances
            ],
        }


UNSUPPORTED_HANDLER_ID = "unsupported"
"""The ``sop_class_handler_id`` of display sets for instances that no handler took."""

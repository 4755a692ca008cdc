"""The encapsulated PDF handler (OHIF's ``dicom-pdf``): one derived display set per document.

Follows OHIF 3.13.2 ``extensions/dicom-pdf/src/getSopClassHandlerModule.js``, which claims
Encapsulated PDF only. ``extras`` has the MIME type, title and bulk data URI of the document.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..models import Instance
from . import sop_classes
from .display_set import DisplaySet
from .handler import HandlerContext, SopClassHandler
from .labels import series_label, text


def _document_uri(md: Mapping[str, Any]) -> str | None:
    value = md.get("EncapsulatedDocument")
    if isinstance(value, Mapping):
        uri = value.get("BulkDataURI")
        return uri if isinstance(uri, str) and uri else None
    return None


def pdf_display_sets(instances: Sequence[Instance], context: HandlerContext) -> list[DisplaySet]:
    """One display set per PDF, labelled with the series description (default "PDF")."""
    sets = []
    for inst in instances:
        md = inst.metadata
        description = md.get("SeriesDescription", "PDF")  # OHIF's destructuring default
        sets.append(
            context.display_set(
                [inst],
                plugin="dicom-pdf",
                modality=text(md.get("Modality")),
                label=series_label({**md, "SeriesDescription": description}, md.get("Modality")),
                is_derived=True,
                num_image_frames=0,
                is_multi_frame=False,
                extras={
                    "mime_type": md.get("MIMETypeOfEncapsulatedDocument") or "application/pdf",
                    "document_title": text(md.get("DocumentTitle")),
                    "document_uri": _document_uri(md),
                },
            )
        )
    return sets


HANDLER = SopClassHandler("pdf", sop_classes.PDF, pdf_display_sets)
"""The built-in PDF handler (OHIF's ``@ohif/extension-dicom-pdf...dicom-pdf``)."""

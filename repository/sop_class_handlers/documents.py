"""The encapsulated document handler: PDF, CDA and 3D model documents, one display set each."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..models import Instance
from . import sop_classes
from .display_set import DisplaySet
from .handler import HandlerContext, SopClassHandler


def _document_uri(md: Mapping[str, Any]) -> str | None:
    value = md.get("EncapsulatedDocument")
    if isinstance(value, Mapping):
        uri = value.get("BulkDataURI")
        return uri if isinstance(uri, str) and uri else None
    return None


def document_display_sets(
    instances: Sequence[Instance], context: HandlerContext
) -> list[DisplaySet]:
    """One display set per document; ``extras`` has its MIME type, title and bulk data URI."""
    sets = []
    for inst in instances:
        md = inst.metadata
        mime = md.get("MIMETypeOfEncapsulatedDocument") or None
        title = md.get("DocumentTitle") or None
        sets.append(
            context.display_set(
                [inst],
                plugin="dicom-pdf" if mime in (None, "application/pdf") else "dicom-document",
                modality=context.series.modality or "DOC",
                label=title if isinstance(title, str) else None,
                extras={
                    "mime_type": mime,
                    "document_title": title,
                    "document_uri": _document_uri(md),
                },
            )
        )
    return sets


HANDLER = SopClassHandler(
    "encapsulated-document", sop_classes.ENCAPSULATED_DOCUMENTS, document_display_sets
)
"""The built-in encapsulated document handler."""

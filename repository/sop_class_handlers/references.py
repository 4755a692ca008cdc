"""Find the series a derived object (SEG, RTSTRUCT, SR, KO, PR, parametric map) refers to."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any


def items(node: Any, keyword: str) -> list[Mapping[str, Any]]:
    """The items of sequence ``keyword`` in a naturalized dataset (empty if absent)."""
    value = node.get(keyword) if isinstance(node, Mapping) else None
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, Mapping)]


def _uid(node: Mapping[str, Any], keyword: str) -> str | None:
    value = node.get(keyword)
    if isinstance(value, list):
        value = value[0] if value else None
    return value if isinstance(value, str) and value else None


def _series_uids(seq_items: list[Mapping[str, Any]]) -> Iterator[str]:
    for item in seq_items:
        uid = _uid(item, "SeriesInstanceUID")
        if uid:
            yield uid


def _rt_series(md: Mapping[str, Any]) -> Iterator[str]:
    for frame_of_ref in items(md, "ReferencedFrameOfReferenceSequence"):
        for study in items(frame_of_ref, "RTReferencedStudySequence"):
            yield from _series_uids(items(study, "RTReferencedSeriesSequence"))


def _evidence_series(md: Mapping[str, Any]) -> Iterator[str]:
    for keyword in ("CurrentRequestedProcedureEvidenceSequence", "PertinentOtherEvidenceSequence"):
        for study in items(md, keyword):
            yield from _series_uids(items(study, "ReferencedSeriesSequence"))


def _source_images(md: Mapping[str, Any]) -> Iterator[str]:
    groups = (
        items(md, "SharedFunctionalGroupsSequence")
        + items(md, "PerFrameFunctionalGroupsSequence")[:1]
    )
    for group in groups:
        for derivation in items(group, "DerivationImageSequence"):
            for source in items(derivation, "SourceImageSequence"):
                uid = _uid(source, "ReferencedSOPInstanceUID")
                if uid:
                    yield uid
    for source in items(md, "SourceImageSequence"):
        uid = _uid(source, "ReferencedSOPInstanceUID")
        if uid:
            yield uid


def referenced_series(
    md: Mapping[str, Any], series_of_instance: Callable[[str], str | None], own_series: str
) -> str | None:
    """The first series (other than its own) that a derived object refers to, if any.

    Looks in ReferencedSeriesSequence, then the RT frame-of-reference tree (RTSTRUCT), then the
    evidence sequences (SR, KO), then source images resolved through the study's instances.
    """
    candidates = [
        *_series_uids(items(md, "ReferencedSeriesSequence")),
        *_rt_series(md),
        *_evidence_series(md),
    ]
    for uid in candidates:
        if uid != own_series:
            return uid
    for sop_uid in _source_images(md):
        found = series_of_instance(sop_uid)
        if found and found != own_series:
            return found
    return None

"""Turn a study read from the database into display sets, as OHIF's ``DisplaySetService`` does.

Follows OHIF 3.13.2 ``platform/core/src/services/DisplaySetService/DisplaySetService.ts``: each
series' instances (offered in OHIF's ``sortByInstanceNumber`` order) are first split by SOP class
(``makeDisplaySetForInstances``); each group is offered to the handlers that claim its class, in
order; a handler returning nothing declines and the next one is asked; what a handler puts in
display sets is taken and the rest goes on. If no handler made a display set for the group, one
"unsupported" display set holds it, with the reason in ``extras["reason"]``. Instances left over
after some handler made display sets are not shown, as in OHIF (a SEG series shows its newest
segmentation). Then SEG and RTSTRUCT display sets take ``is_reconstructable`` from the display
set they reference, as OHIF's handlers do.

Where we differ on purpose: a handler that raises is treated as declining and its error ends up
in the reason of the unsupported display set (in OHIF it breaks the whole study).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydicom.uid import UID

from ..errors import NotFoundError
from ..image_id import instance_frame_ids
from ..models import Instance, Series, Study
from .display_set import UNSUPPORTED_HANDLER_ID, DisplaySet
from .handler import HandlerContext, SopClassHandler
from .ordering import sort_by_instance_number

log = logging.getLogger("repository.sop_class_handlers")


def _sop_class_name(sop_class_uid: str) -> str:
    name = UID(sop_class_uid).name
    return "" if name == sop_class_uid else f" ({name})"


class _SeriesIndex:
    """SOP Instance UID -> Series Instance UID over one series list, for resolving references."""

    def __init__(self, series: Sequence[Series]) -> None:
        self._map = {i.sop_instance_uid: s.series_instance_uid for s in series for i in s.instances}

    def __call__(self, sop_instance_uid: str) -> str | None:
        return self._map.get(sop_instance_uid)


def build_display_sets(
    study: Study,
    handlers: Sequence[SopClassHandler],
    *,
    authorization_headers: Mapping[str, str] | None = None,
    dicom_web_client: Any = None,
) -> list[DisplaySet]:
    """All display sets of ``study``: series lists in order, series in order, then by SOP class.

    A handler that raises or returns instances it was not offered is logged and treated as
    declining, so one faulty handler does not hide a study.
    """
    out: list[DisplaySet] = []
    for series_list in study.series_lists:
        index = _SeriesIndex(series_list.series)
        for series in series_list.series:
            groups: dict[str | None, list[Instance]] = {}
            for inst in sort_by_instance_number(series.instances):
                groups.setdefault(inst.sop_class_uid, []).append(inst)
            for sop_class, instances in groups.items():
                contexts = _Contexts(
                    study, series, series_list.wado_uri, authorization_headers,
                    dicom_web_client, index,
                )  # fmt: skip
                out.extend(_group_display_sets(sop_class, instances, handlers, contexts))
    return inherit_reconstructable(out)


@dataclasses.dataclass(frozen=True)
class _Contexts:
    study: Study
    series: Series
    wado_uri: str | None
    authorization_headers: Mapping[str, str] | None
    dicom_web_client: Any
    index: _SeriesIndex

    def __call__(self, handler_id: str) -> HandlerContext:
        return HandlerContext(
            self.study,
            self.series,
            handler_id,
            wado_uri=self.wado_uri,
            authorization_headers=self.authorization_headers,
            dicom_web_client=self.dicom_web_client
            if handler_id != UNSUPPORTED_HANDLER_ID
            else None,
            series_of_instance=self.index,
        )


def _group_display_sets(
    sop_class: str | None,
    instances: list[Instance],
    handlers: Sequence[SopClassHandler],
    contexts: _Contexts,
) -> list[DisplaySet]:
    """OHIF's ``_makeDisplaySetForInstances`` over the instances of one SOP class."""
    pending = list(instances)
    made: list[DisplaySet] = []
    outcomes: list[str] = []
    for handler in handlers:
        if not pending:
            break
        if sop_class not in handler.claims:
            continue
        sets, failure = _run(handler, pending, contexts(handler.id))
        if not sets:
            outcomes.append(f"{handler.id!r} failed: {failure}" if failure else f"{handler.id!r}")
            continue
        made.extend(sets)
        taken = {i.sop_instance_uid for ds in sets for i in ds.instances}
        pending = [i for i in pending if i.sop_instance_uid not in taken]
    if made:
        return made
    return [_unsupported(sop_class, instances, outcomes, contexts(UNSUPPORTED_HANDLER_ID))]


def _run(
    handler: SopClassHandler, offered: list[Instance], context: HandlerContext
) -> tuple[list[DisplaySet], str | None]:
    """The handler's display sets, or none and why (an exception, or a malformed result)."""
    try:
        sets = list(handler.get_display_sets_from_series(offered, context) or ())
    except Exception as error:
        log.warning("%s failed: %s", context.where, error, exc_info=True)
        return [], f"{type(error).__name__}: {error}"
    offered_uids = {i.sop_instance_uid for i in offered}
    for ds in sets:
        if not isinstance(ds, DisplaySet):
            problem = f"it returned {type(ds).__name__}, not a display set"
        elif not ds.instances or set(ds.sop_instance_uids) - offered_uids:
            problem = "it returned a display set with instances it was not offered"
        else:
            continue
        log.error("%s: %s; ignored", context.where, problem)
        return [], problem
    return sets, None


def _unsupported(
    sop_class: str | None,
    instances: list[Instance],
    outcomes: list[str],
    context: HandlerContext,
) -> DisplaySet:
    if sop_class is None:
        reason = "the instances have no SOP Class UID"
    elif outcomes:
        reason = (f"SOP class {sop_class}{_sop_class_name(sop_class)} was declined by "
                  + ", ".join(outcomes))  # fmt: skip
    else:
        reason = f"no handler for SOP class {sop_class}{_sop_class_name(sop_class)}"
    series = context.series
    modality = instances[0].metadata.get("Modality")
    return context.display_set(
        instances,
        plugin=UNSUPPORTED_HANDLER_ID,
        modality=modality if isinstance(modality, str) else series.modality,
        key=sop_class or "",
        label=f"Unsupported: {series.series_description or series.modality or ''}".strip(),
        num_image_frames=None,
        is_multi_frame=False,
        extras={"reason": reason, "sop_class_uid": sop_class},
    )


def inherit_reconstructable(display_sets: list[DisplaySet]) -> list[DisplaySet]:
    """SEG and RTSTRUCT display sets take ``is_reconstructable`` from the display set they
    reference, found as OHIF finds it: an earlier display set holding a referenced instance
    (``getDisplaySetsForReferences``), else the first later one of the referenced series."""
    out = list(display_sets)
    for n, ds in enumerate(out):
        if not ds.reconstructable_from_reference:
            continue
        wanted = {
            (ref.get("series_instance_uid"), uid)
            for ref in ds.extras.get("referenced_series_sequence") or ()
            for uid in ref.get("referenced_sop_instance_uids") or ()
        }
        earlier = (d for d in out[:n] if any((d.series_instance_uid, u) in wanted
                                               for u in d.sop_instance_uids))  # fmt: skip
        later = (d for d in out[n + 1:]
                 if d.series_instance_uid == ds.referenced_series_instance_uid)  # fmt: skip
        target = next(earlier, None) or _first_of_series(later)
        if target is not None:
            out[n] = dataclasses.replace(ds, is_reconstructable=target.is_reconstructable)
    return out


def _first_of_series(candidates: Any) -> DisplaySet | None:
    return next(iter(candidates), None)


def study_display_sets(
    study: Study | None,
    study_uid: str,
    data_source: str | None,
    handlers: Sequence[SopClassHandler],
    *,
    authorization_headers: Mapping[str, str] | None = None,
    dicom_web_client: Any = None,
) -> list[DisplaySet]:
    """:func:`build_display_sets` of a study as read (``Store.get_display_sets``); raises
    :class:`~repository.errors.NotFoundError` naming the study if it is not stored."""
    if study is None or not study.series_lists:
        where = f" from data source {data_source!r}" if data_source else ""
        raise NotFoundError(f"study {study_uid}{where} is not in the store")
    return build_display_sets(study, handlers, authorization_headers=authorization_headers,
                              dicom_web_client=dicom_web_client)  # fmt: skip


def display_set_image_ids(display_sets: Iterable[DisplaySet], series_uid: str | None) -> list[str]:
    """One imageId per frame, in display order, of the image display sets (of one series, or
    all), as OHIF's ``getImageIdsForDisplaySet`` builds them: none for display sets without
    images (no frame count or none: SR, SEG, RTSTRUCT, PDF, KO, PR, ECG, slides) or unsupported
    ones."""
    return [
        image_id
        for display_set in display_sets
        if series_uid in (None, display_set.series_instance_uid)
        and display_set.num_image_frames  # None or 0: no images (SR, SEG, PDF, KO, ECG...)
        and not display_set.is_unsupported
        for image_id in instance_frame_ids(display_set.instances)
    ]

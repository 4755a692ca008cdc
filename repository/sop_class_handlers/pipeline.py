"""Turn a study read from the database into display sets, series by series (OHIF v3 semantics).

For each series, instances are ordered (InstanceNumber, then SOPInstanceUID) and offered to the
handlers in order, each handler getting the still-unclaimed instances of the SOP classes it
claims. What a handler puts in its display sets is taken; what it declines goes on. Whatever no
handler takes ends in an "unsupported" display set that says why.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from pydicom.uid import UID

from ..models import Instance, Series, Study
from .display_set import UNSUPPORTED_HANDLER_ID, DisplaySet
from .handler import HandlerContext, SopClassHandler

log = logging.getLogger("repository.sop_class_handlers")


def _display_order(inst: Instance) -> tuple[bool, int, str]:
    number = inst.instance_number
    return (number is None, number or 0, inst.sop_instance_uid)


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
    """All display sets of ``study``: series lists in order, series by number, then handler output.

    A handler that raises or returns instances it was not offered is logged and treated as
    declining, so one faulty plug-in does not hide a study.
    """
    out: list[DisplaySet] = []
    for series_list in study.series_lists:
        index = _SeriesIndex(series_list.series)
        for series in series_list.series:
            out.extend(
                _series_display_sets(
                    study,
                    series,
                    handlers,
                    wado_uri=series_list.wado_uri,
                    authorization_headers=authorization_headers,
                    dicom_web_client=dicom_web_client,
                    index=index,
                )
            )
    return out


def _series_display_sets(
    study: Study,
    series: Series,
    handlers: Sequence[SopClassHandler],
    *,
    wado_uri: str | None,
    authorization_headers: Mapping[str, str] | None,
    dicom_web_client: Any,
    index: _SeriesIndex,
) -> list[DisplaySet]:
    pending = sorted(series.instances, key=_display_order)
    position = {i.sop_instance_uid: n for n, i in enumerate(pending)}
    made: list[DisplaySet] = []
    declined: dict[str | None, list[str]] = defaultdict(list)
    for handler in handlers:
        offered = [i for i in pending if i.sop_class_uid in handler.claims]
        if not offered:
            continue
        context = HandlerContext(
            study,
            series,
            handler.id,
            wado_uri=wado_uri,
            authorization_headers=authorization_headers,
            dicom_web_client=dicom_web_client,
            series_of_instance=index,
        )
        sets = _run(handler, offered, context)
        taken = {i.sop_instance_uid for ds in sets for i in ds.instances}
        for inst in offered:
            if inst.sop_instance_uid not in taken:
                declined[inst.sop_class_uid].append(handler.id)
        made.extend(sets)
        pending = [i for i in pending if i.sop_instance_uid not in taken]
    if pending:
        made.extend(_unsupported(study, series, pending, declined, wado_uri, authorization_headers,
                                 index))  # fmt: skip
    made.sort(key=lambda ds: min(position.get(u, len(position)) for u in ds.sop_instance_uids))
    return made


def _run(
    handler: SopClassHandler, offered: list[Instance], context: HandlerContext
) -> list[DisplaySet]:
    where = f"handler {handler.id!r} on series {context.series.series_instance_uid}"
    try:
        result = handler.get_display_sets_from_series(offered, context)
        sets = list(result or ())
    except Exception:
        log.exception("%s failed; its instances go on to later handlers", where)
        return []
    offered_uids = {i.sop_instance_uid for i in offered}
    for ds in sets:
        if not isinstance(ds, DisplaySet):
            log.error("%s returned %r, not a DisplaySet; ignored", where, type(ds).__name__)
            return []
        stray = set(ds.sop_instance_uids) - offered_uids
        if stray or not ds.instances:
            log.error("%s returned a display set with instances it was not offered; ignored", where)
            return []
    return sets


def _unsupported(
    study: Study,
    series: Series,
    pending: list[Instance],
    declined: Mapping[str | None, list[str]],
    wado_uri: str | None,
    authorization_headers: Mapping[str, str] | None,
    index: _SeriesIndex,
) -> list[DisplaySet]:
    groups: dict[str | None, list[Instance]] = defaultdict(list)
    for inst in pending:
        groups[inst.sop_class_uid].append(inst)
    context = HandlerContext(
        study,
        series,
        UNSUPPORTED_HANDLER_ID,
        wado_uri=wado_uri,
        authorization_headers=authorization_headers,
        dicom_web_client=None,
        series_of_instance=index,
    )
    sets = []
    for sop_class, instances in groups.items():
        if sop_class is None:
            reason = "the instances have no SOP Class UID"
        elif declined.get(sop_class):
            ids = ", ".join(dict.fromkeys(declined[sop_class]))
            reason = f"SOP class {sop_class}{_sop_class_name(sop_class)} was declined by {ids}"
        else:
            reason = f"no handler for SOP class {sop_class}{_sop_class_name(sop_class)}"
        sets.append(
            context.display_set(
                instances,
                plugin=UNSUPPORTED_HANDLER_ID,
                key=sop_class or "",
                label=f"Unsupported: {series.series_description or series.modality or ''}".strip(),
                extras={"reason": reason, "sop_class_uid": sop_class},
            )
        )
    return sets

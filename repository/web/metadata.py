"""WADO-RS metadata (PS3.18 10.4.1.1.2): DICOM JSON of a study, series or instance.

Answered from the database alone (no file is read): each instance's stored metadata becomes DICOM
JSON, every ``BulkDataURI`` in it points at this server's bulk-data endpoint for that instance
(built from the host the request came to, so it works behind a proxy), and the array is streamed
in chunks as the rows arrive from a server-side cursor.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
from sqlalchemy import Engine, Select, select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from .._reads import json_text
from ..normalize import to_dicom_json
from ..schema import (
    InstanceRow,
    SeriesListRow,
    SeriesRow,
    StudyRow,
    instance_table,
)
from .errors import not_found, path_uids
from .negotiation import json_media_type
from .qido import dicomweb_root

CHUNK = 200
"""Instances serialized per chunk of the streamed answer."""


def instances_statement(uids: list[str]) -> Any:
    """Study, series, SOP Instance UID and metadata text of the instances under ``uids``."""
    stmt = (
        select(StudyRow.study_instance_uid, SeriesRow.series_instance_uid,
               instance_table.c.sop_instance_uid, json_text(InstanceRow.metadata_))
        .select_from(InstanceRow)
        .join(SeriesRow, SeriesRow.id == InstanceRow.series_id)
        .join(SeriesListRow, SeriesListRow.id == SeriesRow.series_list_id)
        .join(StudyRow, StudyRow.id == SeriesListRow.study_id)
        .where(StudyRow.study_instance_uid == uids[0])
    )  # fmt: skip
    if len(uids) > 1:
        stmt = stmt.where(SeriesRow.series_instance_uid == uids[1])
    if len(uids) > 2:
        stmt = stmt.where(instance_table.c.sop_instance_uid == uids[2])
    return stmt.order_by(
        SeriesRow.id, instance_table.c.instance_number.is_(None), instance_table.c.instance_number,
        instance_table.c.sop_instance_uid,
    )  # fmt: skip


def rewrite_bulk(elements: dict[str, Any], base: str) -> None:
    """Point every BulkDataURI in ``elements`` (DICOM JSON, nested too) at ``base/<tag path>``."""
    for tag, element in elements.items():
        if "BulkDataURI" in element:
            element["BulkDataURI"] = f"{base}/{tag}"
        elif element.get("vr") == "SQ":
            for index, item in enumerate(element.get("Value") or ()):
                if item:
                    rewrite_bulk(item, f"{base}/{tag}/{index}")


def instance_json(uids: tuple[str, str, str], text: str, root: str) -> dict[str, Any]:
    """One instance's stored metadata as DICOM JSON with this server's bulk-data URIs."""
    elements = to_dicom_json(orjson.loads(text))
    study, series, sop = uids
    base = f"{root}/studies/{study}/series/{series}/instances/{sop}/bulkdata"
    rewrite_bulk(elements, base)
    return elements


class _Rows:
    """A server-side cursor over the instances, opened before the response starts."""

    def __init__(self, engine: Engine, stmt: Select[Any]) -> None:
        self.conn = engine.connect()
        try:
            result = self.conn.execution_options(yield_per=CHUNK).execute(stmt)
            self.partitions = result.partitions()
            self.first = next(self.partitions, [])
        except BaseException:
            self.conn.close()
            raise

    def chunks(self, root: str) -> Iterator[bytes]:
        """The JSON array, a chunk of instances at a time; closes the connection at the end."""
        try:
            separator = b"["
            partition: Any = self.first
            while partition:
                body = b",".join(
                    orjson.dumps(instance_json((r[0], r[1], r[2]), r[3], root)) for r in partition
                )
                yield separator + body
                separator = b","
                partition = next(self.partitions, [])
            yield b"]" if separator == b"," else b"[]"
        finally:
            self.conn.close()


async def _answer(request: Request, names: tuple[str, ...], what: str) -> Response:
    media_type = json_media_type(request)
    uids = path_uids(request, *names)
    engine = request.app.state.store.engine
    rows = await run_in_threadpool(_Rows, engine, instances_statement(uids))
    if not rows.first:
        rows.conn.close()
        raise not_found(f"no {what} {uids[-1]} here" + (f" (study {uids[0]})" if uids[1:] else ""))
    return StreamingResponse(rows.chunks(dicomweb_root(request)), media_type=media_type)


async def study_metadata(request: Request) -> Response:
    """``GET /studies/{study}/metadata``."""
    return await _answer(request, ("study",), "instances in study")


async def series_metadata(request: Request) -> Response:
    """``GET /studies/{study}/series/{series}/metadata``."""
    return await _answer(request, ("study", "series"), "instances in series")


async def instance_metadata(request: Request) -> Response:
    """``GET /studies/{study}/series/{series}/instances/{instance}/metadata``."""
    return await _answer(request, ("study", "series", "instance"), "instance")

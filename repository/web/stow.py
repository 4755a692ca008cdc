"""STOW-RS (PS3.18 10.5): store instances sent as ``multipart/related; type="application/dicom"``
(or as a single ``application/dicom`` body, or as DICOM JSON and bulk data: :mod:`.stow_bodies`).

Each part is written to the storage folder as a file of its own
(``<storage>/<study>/<series>/<sop>-<token>.dcm``, :func:`repository.storage.instance_path`), read
back like ``dicom-repo ingest`` reads files, and added through the store, so its events are fired
after the commit and its file becomes the one recorded for the instance. The file is received
into ``<storage>/.incoming`` and moved to its name only after the commit: a STOW-RS that fails
(the database away) leaves no file, and the same instance sent again is stored as sent then.
A name is never reused, so a delete of the instance that committed earlier and unlinks its file
late removes its own file, not this one.
The answer lists the stored instances (ReferencedSOPSequence) and
the refused ones with a DICOM failure reason (FailedSOPSequence): 200 when all were stored, 202
when some were, 409 when none were; 403 in read-only mode.
"""

from __future__ import annotations

import secrets
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import pydicom
from python_multipart.multipart import MultipartParser, MultipartState
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..db_errors import driver_errors
from ..errors import ConflictError, InvalidInputError
from ..image_id import file_image_id
from ..reading import read_file
from ..schema import instance_table
from ..storage import instance_path, owned, place, remove_after_commit
from ..store import Store
from ..validation import check_uid
from . import stow_bodies
from .admission import slots_of
from .errors import WebError, bad_request, brief, log, path_uids
from .files import find_instance
from .negotiation import DICOM_JSON
from .qido import dicomweb_root
from .routing import database_writable

DICOM = "application/dicom"
CANNOT_UNDERSTAND = 0xC000
STUDY_MISMATCH = 0xA900  # "data set does not match SOP class" is the closest PS3.4 reason
DUPLICATE_SOP = 0x0111
_SERIES = "SeriesInstanceUID"


@dataclass
class Part:
    """One received part: its headers and the temporary file holding its body."""

    path: Path
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Outcome:
    """What happened to one part: stored (reason None) or refused with a reason and message."""

    sop_class: str | None
    sop: str | None
    study: str | None
    series: str | None
    reason: int | None = None
    message: str = ""


def _boundary(request: Request) -> tuple[str, str]:
    """The multipart boundary and the type of the parts (``application/dicom`` or JSON)."""
    kind, _, params = request.headers.get("content-type", "").partition(";")
    if kind.strip().lower() != "multipart/related":
        raise WebError(415, f'STOW-RS takes multipart/related; type="application/dicom" or '
                       f'type="{DICOM_JSON}", or a single application/dicom body')  # fmt: skip
    values = {}
    for param in params.split(";"):
        name, _, value = param.strip().partition("=")
        values[name.strip().lower()] = value.strip().strip('"')
    part_type = values.get("type", "application/dicom").lower()
    if part_type not in ("application/dicom", DICOM_JSON):
        raise WebError(415, f"STOW-RS parts of type {values['type']!r} are not supported")
    if not values.get("boundary"):
        raise bad_request("the multipart/related Content-Type has no boundary")
    return values["boundary"], part_type


async def _receive(request: Request, boundary: str, folder: Path) -> list[Part]:
    folder.mkdir(parents=True, exist_ok=True)
    parts: list[Part] = []
    handle: list[BinaryIO] = []
    header: list[bytes] = [b"", b""]

    def begin() -> None:
        path = folder / f"{secrets.token_hex(12)}.part"
        parts.append(Part(path))
        handle.append(path.open("wb"))

    def header_end() -> None:
        parts[-1].headers[header[0].decode("latin-1").lower()] = header[1].decode("latin-1")
        header[0] = header[1] = b""

    callbacks: Any = {
        "on_part_begin": begin,
        "on_part_data": lambda data, start, end: handle[-1].write(data[start:end]),
        "on_part_end": lambda: handle.pop().close(),
        "on_header_field": lambda data, s, e: header.__setitem__(0, header[0] + data[s:e]),
        "on_header_value": lambda data, s, e: header.__setitem__(1, header[1] + data[s:e]),
        "on_header_end": header_end,
    }
    parser = MultipartParser(boundary, callbacks)
    try:
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
        if parser.state != MultipartState.END:
            raise bad_request("truncated multipart/related body: it has no closing boundary")
    except BaseException as error:  # cancelled too (the request timed out, SIGTERM)
        _discard(parts)
        if isinstance(error, WebError) or not isinstance(error, Exception):
            raise
        raise bad_request(f"malformed multipart/related body: {error}") from None
    finally:
        for open_handle in handle:
            open_handle.close()
    return parts


async def _received(request: Request, folder: Path) -> tuple[list[Part], list[Outcome]]:
    """The request's instances as Part 10 parts, whatever the body (see :mod:`.stow_bodies`),
    and the outcomes of the instances of a DICOM JSON body that could not be made into files."""
    if request.headers.get("content-type", "").split(";")[0].strip().lower() == DICOM:
        return [Part(await stow_bodies.receive_single(request, folder), {})], []
    boundary, part_type = _boundary(request)
    parts = await _receive(request, boundary, folder)
    if not parts:
        raise bad_request("the multipart/related body has no parts")
    if part_type == "application/dicom":
        return parts, []
    made = await run_in_threadpool(stow_bodies.to_part10, parts, folder)
    refused = [Outcome(m.sop_class, m.sop, None, None, CANNOT_UNDERSTAND, m.message)
               for m in made if isinstance(m, stow_bodies.Refusal)]  # fmt: skip
    for outcome in refused:
        log.warning("STOW-RS refused %s: %s", outcome.sop or "an instance", outcome.message)
    return [Part(m, {}) for m in made if isinstance(m, Path)], refused


def _discard(parts: list[Part]) -> None:
    for part in parts:
        part.path.unlink(missing_ok=True)


def _identify(part: Part, study: str | None) -> Outcome:
    """The part's UIDs; a reason when it is not DICOM or belongs to another study."""
    kind = part.headers.get("content-type", "application/dicom").split(";")[0].strip().lower()
    if kind != "application/dicom":
        return Outcome(None, None, None, None, CANNOT_UNDERSTAND, f"part of type {kind!r}")
    try:
        with warnings.catch_warnings():  # values are read (converted) below too
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(part.path, stop_before_pixels=True, force=True)
            uids = [
                check_uid(str(ds.get(keyword, "")), keyword)
                for keyword in ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", _SERIES)
            ]
        outcome = Outcome(uids[0], uids[1], uids[2], uids[3])
    except Exception as error:
        message = f"not a DICOM instance: {brief(error)}"
        return Outcome(None, None, None, None, CANNOT_UNDERSTAND, message)
    if study is not None and outcome.study != study:
        outcome.reason, outcome.message = STUDY_MISMATCH, f"belongs to study {outcome.study}"
    return outcome


def _final(storage: Path, outcome: Outcome) -> Path:
    """The new file this write of the instance is to be kept as (see ``instance_path``)."""
    assert outcome.study and outcome.series and outcome.sop
    return instance_path(storage.resolve(), outcome.study, outcome.series, outcome.sop)


def _add(store: Store, part: Part, outcome: Outcome, final: Path, keep_json: bool) -> bool:
    """Record the part as the file ``final`` (read where it is, its bulk data pointing at
    ``final``; ``keep_json``: with its DICOM JSON); True if the instance is new. A database
    failure is raised, nothing committed."""
    try:
        inst = read_file(part.path, bulk_path=final)
        paths = {inst.sop_instance_uid: str(final)}
        added = store.add_normalized([inst], paths=paths, keep_json=keep_json)
    except ConflictError as error:
        outcome.reason, outcome.message = DUPLICATE_SOP, brief(error)
        return False
    except InvalidInputError as error:
        outcome.reason, outcome.message = CANNOT_UNDERSTAND, brief(error)
        return False
    return added.added > 0


def _missing_file(store: Store, outcome: Outcome, storage: Path) -> Path | None:
    """The file in ``storage`` that the instance, found stored already, is recorded as, if that
    file is not there: a commit went through but its answer was lost (a failover, a dropped
    connection), and this request's retry, or the client sending the instance again, found it
    stored. ``None`` otherwise (refused, deleted meanwhile, its file present or not ours)."""
    if outcome.reason is not None:
        return None
    assert outcome.study and outcome.series and outcome.sop
    try:
        stored = find_instance(store.engine, [outcome.study, outcome.series, outcome.sop])
    except WebError:  # deleted meanwhile
        return None
    path = stored.path
    if path is None or path.exists() or not owned([str(path)], storage):
        return None
    return path


def store_parts(
    store: Store, parts: list[Part], storage: Path, study: str | None, keep_json: bool = False
) -> list[Outcome]:
    """Add every part (``keep_json``: with its DICOM JSON), then move its file into place; the
    outcome of each, in order.

    A part's file is moved to its final name, new for each write, only once its instance was
    committed as new, or when the instance is recorded as that file but the file is missing (a
    commit whose answer was lost, retried); an instance stored already keeps its file. If the
    database fails, the parts not yet committed are deleted and the error raised: nothing is
    left that the database does not record (a commit cut after it went through, then given up
    on, gets its file when the client sends it again).
    """
    outcomes: list[Outcome] = []
    placed: list[tuple[str, Path]] = []  # (StudyInstanceUID, file)
    try:
        for part in parts:
            outcome = _identify(part, study)
            if outcome.reason is None:
                final = _final(storage, outcome)
                if _add(store, part, outcome, final, keep_json):
                    place(part.path, final)
                    placed.append((str(outcome.study), final))
                elif (missing := _missing_file(store, outcome, storage)) is not None:
                    place(part.path, missing, replace=False)
                    placed.append((str(outcome.study), missing))
            if outcome.reason is not None:
                log.warning("STOW-RS refused %s: %s", outcome.sop or "a part", outcome.message)
            outcomes.append(outcome)
    finally:
        _discard(parts)  # what was not moved into place
        _unless_recorded(store, placed, storage)
    return outcomes


def _unless_recorded(store: Store, placed: list[tuple[str, Path]], storage: Path) -> None:
    """Remove the files just moved into place whose instance a DELETE removed between the
    commit and the move (that delete's unlink came before the file): checked after the moves,
    so a delete committed later finds the file and unlinks it itself. Best effort: with the
    database away, ``storage check`` finds such a file later. ``placed``: (study, file)."""
    if not placed:
        return
    ids = {file_image_id(path): path for _, path in placed}
    table = instance_table.c
    query = select(table.image_id).where(  # by study too: routed to its shards on Citus
        table.study_instance_uid.in_(sorted({s for s, _ in placed})), table.image_id.in_(list(ids))
    )
    try:
        with store.engine.connect() as conn:
            recorded = set(conn.execute(query).scalars())
    except driver_errors():
        return
    remove_after_commit([str(p) for i, p in ids.items() if i not in recorded], storage)


def response_json(outcomes: list[Outcome], root: str) -> dict[str, Any]:
    """The PS3.18 STOW-RS response: ReferencedSOPSequence and FailedSOPSequence."""
    stored, failed = [], []
    for o in outcomes:
        item: dict[str, Any] = {}
        if o.sop_class:
            item["00081150"] = {"vr": "UI", "Value": [o.sop_class]}
        if o.sop:
            item["00081155"] = {"vr": "UI", "Value": [o.sop]}
        if o.reason is None:
            url = f"{root}/studies/{o.study}/series/{o.series}/instances/{o.sop}"
            stored.append({**item, "00081190": {"vr": "UR", "Value": [url]}})
        else:
            failed.append({**item, "00081197": {"vr": "US", "Value": [o.reason]}})
    out: dict[str, Any] = {}
    studies = {o.study for o in outcomes if o.reason is None}
    if len(studies) == 1:
        out["00081190"] = {"vr": "UR", "Value": [f"{root}/studies/{studies.pop()}"]}
    if failed:
        out["00081198"] = {"vr": "SQ", "Value": failed}
    if stored:
        out["00081199"] = {"vr": "SQ", "Value": stored}
    return out


async def store_instances(request: Request) -> Response:
    """``POST /studies`` and ``POST /studies/{study}``."""
    settings = request.app.state.settings
    if settings.read_only:
        raise WebError(403, "this server is read-only: STOW-RS is refused")
    if settings.storage is None:
        raise WebError(403, "STOW-RS needs a storage folder (dicom-repo serve --storage DIR)")
    if not await database_writable(request):
        raise WebError(503, "the database server is a hot standby (read-only): STOW-RS needs "
                       "the primary; this server answers reads only")  # fmt: skip
    study = path_uids(request, "study")[0] if "study" in request.path_params else None
    parts, refused = await _received(request, settings.storage / ".incoming")
    store, writes = request.app.state.store, request.app.state.writes

    def store_all() -> list[Outcome]:
        with writes.hold():
            return store_parts(store, parts, settings.storage, study, settings.keep_json)

    try:
        async with slots_of(request).slot():
            outcomes = refused + await run_in_threadpool(store_all)
    finally:
        # A request cancelled while it waited for its slot; once the thread runs, the request
        # waits for it to end (Starlette does not abandon threads), which discards its parts.
        _discard(parts)
    failures = sum(o.reason is not None for o in outcomes)
    status = 200 if not failures else 202 if failures < len(outcomes) else 409
    body = response_json(outcomes, dicomweb_root(request))
    return JSONResponse(body, status_code=status, media_type=DICOM_JSON)

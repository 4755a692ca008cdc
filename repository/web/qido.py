"""QIDO-RS (PS3.18 10.6): search studies, series and instances at every level.

Query parameters are attribute filters (keyword or tag number, ``PatientID`` or ``00100020``),
``includefield`` (repeated or comma separated; keywords, tags or ``all``), ``fuzzymatching``,
``limit`` and ``offset``. Results carry the level's default attributes (and those of the levels
above when the URL does not name them), the matching and included attributes, and the computed
counts. Attributes without a value are left out (an empty ModalitiesInStudy breaks OHIF's study
list). A ``Warning`` header says when a limit cut the results.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from ..normalize import to_dicom_json
from . import qido_sql
from .attributes import COMPUTED, INSTANCE, RETRIEVE_URL, SERIES, STUDY, Attribute, Level, attribute
from .errors import bad_request, path_uids
from .negotiation import DICOM_JSON, json_media_type
from .numbers import parse_int
from .routing import read_engine

_SCOPE_KEYS = ("StudyInstanceUID", "SeriesInstanceUID")
_SERVED = frozenset(COMPUTED) | {"ModalitiesInStudy"}  # computed here, never copied


def parse(
    params: Iterable[tuple[str, str]],
    level: Level,
    scope: Mapping[str, str],
    max_results: int,
    max_all: int | None = None,
) -> tuple[qido_sql.Search, list[str]]:
    """The search asked for, and the attribute keys to return (``["all"]`` for everything).

    ``max_all``: the most results one answer with ``includefield=all`` holds (each is a whole
    instance's attributes): a larger ``limit`` is refused with 400, no ``limit`` means that many.
    """
    search = qido_sql.Search(level, limit=max_results)
    include: list[str] = []
    seen: set[str] = set()
    asked = False
    for key, value in params:
        if "\x00" in key or "\x00" in value:
            raise bad_request(f"{key[:40]!r}: a query parameter may not hold a NUL character")
        if key == "includefield":
            include += [v.strip() for v in value.split(",") if v.strip()]
        elif key == "fuzzymatching":
            if value not in ("true", "false"):
                raise bad_request(f"fuzzymatching={value!r}: must be true or false")
            search.fuzzy = value == "true"
        elif key in ("limit", "offset"):
            setattr(search, key, parse_int(key, value, minimum=int(key == "limit")))
            asked = asked or key == "limit"
        else:
            attr = attribute(key)
            if attr.key in seen:
                raise bad_request(f"{key} is given more than once")
            seen.add(attr.key)
            _add_filter(search, attr, value)
    search.limit = min(search.limit, max_results)
    for key, uid in scope.items():
        search.filters.append((attribute(key), uid))
    search.scope_depth = len(scope)
    keys = _return_keys(level, scope, search, include)
    if keys == ["all"] and max_all is not None:
        _limit_all(search, max_all, asked)
    return search, keys


def _limit_all(search: qido_sql.Search, max_all: int, asked: bool) -> None:
    if asked and search.limit > max_all:
        raise bad_request(
            f"limit={search.limit} with includefield=all: at most {max_all} results per request "
            f"(page with offset)"
        )
    search.limit = min(search.limit, max_all)


def _add_filter(search: qido_sql.Search, attr: Attribute, value: str) -> None:
    if attr.key == "ModalitiesInStudy":
        search.modalities = [v for v in value.replace("\\", ",").split(",") if v]
        return
    if attr.key in COMPUTED:
        raise bad_request(f"{attr.key} is computed by the server and cannot be matched")
    search.filters.append((attr, value))


def _return_keys(
    level: Level, scope: Mapping[str, str], search: qido_sql.Search, include: list[str]
) -> list[str]:
    if "all" in include:
        return ["all"]
    keys: list[str] = []
    for above in (STUDY, SERIES)[: level.rank]:
        # The levels above are described too, even when the URL names them (as Orthanc does,
        # and clients such as OHIF read them); their counts only when not named.
        named = above.uid_keyword in scope
        keys += [k for k in above.defaults if not (named and k in _SERVED)]
    keys += level.defaults
    keys += ["StudyInstanceUID", "SeriesInstanceUID"][: level.rank]
    keys += [attr.key for attr, _ in search.filters]
    if search.modalities:
        keys.append("ModalitiesInStudy")
    keys += [attribute(name).key for name in include]
    return list(dict.fromkeys(keys))


def _is_bulk(value: Any) -> bool:
    return isinstance(value, dict) and "BulkDataURI" in value


def _pick(keys: list[str], documents: list[dict[str, Any]]) -> dict[str, Any]:
    if keys == ["all"]:
        merged: dict[str, Any] = {}
        for doc in documents:
            merged.update((k, v) for k, v in doc.items() if not _is_bulk(v) and k not in _SERVED)
        return merged
    picked: dict[str, Any] = {}
    for key in keys:
        for doc in reversed(documents):  # the deepest level knows best
            if key in doc and key not in _SERVED:
                picked[key] = doc[key]
                break
    return picked


def _element(vr: str, value: Any) -> dict[str, Any]:
    return {"vr": vr, "Value": [value]}


def result(
    match: qido_sql.Match, keys: list[str], computed: dict[str, int], root: str, top: int = 0
) -> dict[str, Any]:
    """One QIDO-RS result as DICOM JSON (tags in order, empty attributes left out).

    ``top`` is the number of levels the URL names (``/studies/{s}/series``: 1): with
    ``includefield=all`` the counts of the levels it names are left out (as Orthanc does).
    """
    everything = keys == ["all"]
    documents = [orjson.loads(text) for text in match.metadata]
    out = {k: v for k, v in to_dicom_json(_pick(keys, documents)).items() if len(v) > 1}
    wanted = set(keys)
    for name, count in computed.items():
        below = top == 0 or (name == "NumberOfSeriesRelatedInstances" and top == 1)
        if (everything and below) or name in wanted:
            out[COMPUTED[name]] = _element("IS", count)
    modalities = [m for m in (match.modalities or "").split("\\") if m]
    if modalities and ((everything and top == 0) or "ModalitiesInStudy" in wanted):
        out["00080061"] = {"vr": "CS", "Value": modalities}
    path = "/".join(f"{part}/{uid}" for part, uid in
                    zip(("studies", "series", "instances"), match.uids, strict=False))  # fmt: skip
    out[RETRIEVE_URL] = _element("UR", f"{root}/{path}")
    return dict(sorted(out.items()))


def _computed(engine: Engine, level: Level, matches: list[qido_sql.Match]) -> list[dict[str, int]]:
    with engine.connect() as conn:
        studies = qido_sql.study_counts(conn, [m.ids[0] for m in matches])
        series = (
            qido_sql.series_counts(conn, [m.ids[1] for m in matches])
            if level.rank >= SERIES.rank
            else {}
        )
    out: list[dict[str, int]] = []
    for m in matches:
        counts: dict[str, int] = {}
        if m.ids[0] in studies:
            n_series, n_instances = studies[m.ids[0]]
            counts["NumberOfStudyRelatedSeries"] = n_series
            counts["NumberOfStudyRelatedInstances"] = n_instances
        if level.rank >= SERIES.rank:
            counts["NumberOfSeriesRelatedInstances"] = series.get(m.ids[1], 0)
        out.append(counts)
    return out


def _answer(
    engine: Engine, search: qido_sql.Search, keys: list[str], root: str
) -> tuple[bytes, bool]:
    with engine.connect() as conn:
        matches, more = qido_sql.run(conn, search)
    computed = _computed(engine, search.level, matches)
    top = search.scope_depth
    body = [result(m, keys, c, root, top) for m, c in zip(matches, computed, strict=True)]
    return orjson.dumps(body), more


async def search(request: Request, level: Level, scope_names: tuple[str, ...]) -> Response:
    """Answer one QIDO-RS request at ``level``, within the UIDs its path names."""
    media_type = json_media_type(request)
    scope = dict(zip(_SCOPE_KEYS, path_uids(request, *scope_names), strict=False))
    settings = request.app.state.settings
    parsed, keys = parse(request.query_params.multi_items(), level, scope, settings.max_results,
                         settings.max_results_all)  # fmt: skip
    root = dicomweb_root(request)
    if request.method == "HEAD":  # the headers only: the query is checked, not run
        return Response(media_type=media_type or DICOM_JSON)
    engine = await read_engine(request)
    body, more = await run_in_threadpool(_answer, engine, parsed, keys, root)
    headers = {}
    if more:
        headers["Warning"] = (
            f"299 {request.url.netloc}: The number of results exceeded the limit of "
            f"{parsed.limit}; request more with offset={parsed.offset + parsed.limit}"
        )
    return Response(body, media_type=media_type or DICOM_JSON, headers=headers)


def dicomweb_root(request: Request) -> str:
    """This server's DICOMweb root as the client reached it (host and prefix of the request)."""
    return f"{str(request.base_url).rstrip('/')}/dicom-web"


async def studies(request: Request) -> Response:
    """``GET /studies``."""
    return await search(request, STUDY, ())


async def study_series(request: Request) -> Response:
    """``GET /studies/{study}/series`` and ``GET /series``."""
    return await search(request, SERIES, ("study",) if "study" in request.path_params else ())


async def instances(request: Request) -> Response:
    """``GET /instances``, ``/studies/{study}/instances``, ``/studies/{s}/series/{s}/instances``."""
    names = tuple(n for n in ("study", "series") if n in request.path_params)
    return await search(request, INSTANCE, names)

"""WADO-RS rendered resources and thumbnails (PS3.18 10.4.1.1.3, 10.4.1.3).

``.../instances/{I}/rendered`` (the first frame of a multi-frame instance),
``.../frames/{F}/rendered`` (one frame) and the thumbnails of a study, series, instance or frame
answer ``image/jpeg`` (the default) or ``image/png``, chosen by the Accept header or the
``accept`` query parameter, with the query parameters ``window=center,width[,function]``
(``linear``, ``linear-exact``, ``sigmoid``), ``viewport=vw,vh[,sx,sy,sw,sh]`` and
``quality=1..100``. A thumbnail is the representative frame (the middle frame of the middle
instance, by Instance Number, of the first series with images, by Series Number) fitted to
128 x 128 unless a viewport is given. What cannot be rendered answers 406.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from sqlalchemy import Engine, select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from ..image_id import FILE_PREFIX
from ..schema import INSTANCE_IN_SERIES, instance_table, series_table
from . import render
from .errors import WebError, bad_request, not_acceptable, not_found, path_uids
from .files import find_instance
from .frames import frame_numbers
from .negotiation import MediaRange, accepted
from .numbers import parse_decimal, parse_int
from .routing import read_engine

FUNCTIONS = {"linear": "LINEAR", "linear-exact": "LINEAR_EXACT", "sigmoid": "SIGMOID"}
MAX_VIEWPORT = 8192
THUMBNAIL = render.Viewport(128, 128)


def _media_type(request: Request) -> str:
    """``image/jpeg`` or ``image/png``, from ``?accept=`` or the Accept header, else 406."""
    given = request.query_params.get("accept")
    ranges = [MediaRange(given.split(";")[0].strip().lower())] if given else accepted(request)
    for media in ranges:
        if media.type in ("*/*", "image/*", render.JPEG):
            return render.JPEG
        if media.type == render.PNG:
            return render.PNG
    asked = given or request.headers.get("accept")
    raise not_acceptable(f"rendered images are {render.JPEG} or {render.PNG}, not {asked!r}")


def _numbers(name: str, values: list[str], text: str) -> list[float]:
    try:
        return [parse_decimal(name, v) for v in values]
    except WebError:
        raise bad_request(f"{name}={text[:80]!r} must be comma-separated numbers (ASCII digits, "
                          "an optional fraction)") from None  # fmt: skip


def _window(text: str) -> render.Window:
    values = [v.strip() for v in text.split(",")]
    if len(values) not in (2, 3):
        raise bad_request(f"window={text[:80]!r} must be center,width[,function]")
    center, width = _numbers("window", values[:2], text)
    name = values[2].lower() if len(values) == 3 else "linear"
    if name not in FUNCTIONS:
        raise bad_request(f"window function {name[:40]!r} is not one of {', '.join(FUNCTIONS)}")
    if (width < 1) if name == "linear" else (width <= 0):
        raise bad_request(f"window width {width} is too small for the {name} function")
    return render.Window(center, width, FUNCTIONS[name])


def _viewport(text: str) -> render.Viewport:
    values = [v.strip() for v in text.split(",")]
    if len(values) not in (2, 6):
        raise bad_request(f"viewport={text[:80]!r} must be vw,vh or vw,vh,sx,sy,sw,sh")
    numbers = _numbers("viewport", values, text)
    if any(v != int(v) or abs(v) > 2**31 for v in numbers):
        raise bad_request(f"viewport={text[:80]!r} must be whole numbers")
    vw, vh, *source = (int(v) for v in numbers)
    if not (0 < vw <= MAX_VIEWPORT and 0 < vh <= MAX_VIEWPORT):
        raise bad_request(f"viewport width and height must be 1 to {MAX_VIEWPORT}")
    if source and (source[2] == 0 or source[3] == 0):
        raise bad_request("the viewport's source width and height must not be 0")
    sx, sy, sw, sh = source or (0, 0, 0, 0)
    return render.Viewport(vw, vh, (sx, sy, sw, sh) if source else None)


def _quality(text: str) -> int:
    return parse_int("quality", text, minimum=1, maximum=100)


def rendering(request: Request) -> render.Rendering:
    """What the request asks for: media type and the ``window``, ``viewport``, ``quality``."""
    params = request.query_params
    return render.Rendering(
        media_type=_media_type(request),
        window=_window(params["window"]) if "window" in params else None,
        viewport=_viewport(params["viewport"]) if "viewport" in params else None,
        quality=_quality(params["quality"]) if "quality" in params else 90,
    )


def _render(path: Path, index: int, how: render.Rendering) -> bytes:
    try:
        return render.render(path, index, how)
    except render.CannotRender as error:
        raise not_acceptable(f"cannot render {path.name}: {error}") from None
    except render.OutsideImage as error:
        raise bad_request(str(error)) from None
    except WebError:
        raise
    except Exception as error:  # pydicom raises many kinds for damaged pixel data
        raise WebError(422, f"cannot render {path.name}: {error}") from None


async def _answer(request: Request, uids: list[str], frame: int | None, how: render.Rendering,
                  ) -> Response:  # fmt: skip
    """Frame ``frame`` (from 1; None: the representative one) of an instance, rendered."""
    stored = await run_in_threadpool(find_instance, await read_engine(request), uids)
    path = stored.require_file()
    count = max(stored.number_of_frames or 1, 1)
    if frame is not None and frame > count:
        raise not_found(f"frame {frame} does not exist (instance {uids[2]} has {count})")
    index = (count - 1) // 2 if frame is None else frame - 1
    data = await run_in_threadpool(_render, path, index, how)
    return Response(data, media_type=how.media_type)


def _one_frame(request: Request) -> int:
    numbers = frame_numbers(str(request.path_params["frames"]), 2**31)
    if len(numbers) != 1:
        raise bad_request(f"{render.JPEG} and {render.PNG} hold one frame: ask for one number")
    return numbers[0]


async def instance_rendered(request: Request) -> Response:
    """``GET .../instances/{instance}/rendered``: the first frame."""
    uids = path_uids(request, "study", "series", "instance")
    return await _answer(request, uids, 1, rendering(request))


async def frames_rendered(request: Request) -> Response:
    """``GET .../instances/{instance}/frames/{frame}/rendered``."""
    uids = path_uids(request, "study", "series", "instance")
    return await _answer(request, uids, _one_frame(request), rendering(request))


def representative(engine: Engine, study: str, series: str | None) -> list[str]:
    """The UIDs of the middle instance with a file and rows of the study's first series with
    images (or of ``series``), else 404."""
    number = instance_table.c.instance_number
    stmt = (
        select(series_table.c.series_instance_uid, instance_table.c.sop_instance_uid)
        .join(series_table, INSTANCE_IN_SERIES)
        .where(instance_table.c.study_instance_uid == study, instance_table.c.rows.is_not(None),
               instance_table.c.image_id.startswith(FILE_PREFIX))
        .order_by(series_table.c.series_number.nulls_last(), series_table.c.series_instance_uid,
                  number.nulls_last(), instance_table.c.sop_instance_uid)
    )  # fmt: skip
    if series is not None:
        stmt = stmt.where(series_table.c.series_instance_uid == series)
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    first = [row[1] for row in rows if row[0] == rows[0][0]] if rows else []
    if not first:
        where = f"series {series} of study {study}" if series else f"study {study}"
        raise not_found(f"{where} has no instance with pixel data in a file here")
    return [study, str(rows[0][0]), str(first[(len(first) - 1) // 2])]


async def thumbnail(request: Request) -> Response:
    """``GET .../thumbnail`` of a study, series, instance or frame."""
    how = rendering(request)
    how = how if how.viewport is not None else replace(how, viewport=THUMBNAIL)
    names = [n for n in ("study", "series", "instance") if n in request.path_params]
    uids = path_uids(request, *names)
    frame = _one_frame(request) if "frames" in request.path_params else None
    if len(uids) < 3:
        engine = await read_engine(request)
        uids = await run_in_threadpool(representative, engine, *uids, *([None] * (2 - len(uids))))
    return await _answer(request, uids, frame, how)

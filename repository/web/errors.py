"""HTTP errors with a message, and the checks on request values that raise them.

Every error response is ``{"error": message}`` with the status; no traceback ever reaches a
client (an unexpected exception answers 500 with a fixed message and is logged).
"""

from __future__ import annotations

import logging
from pathlib import Path

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .. import validation
from ..errors import InvalidUIDError, RepositoryError

log = logging.getLogger("repository.web")


class WebError(RepositoryError, HTTPException):
    """Raised when a request cannot be answered; ``status_code`` and ``detail`` say why (the
    server answers it with that status; a :class:`RepositoryError` like every error of ours)."""

    def __init__(
        self, status_code: int, detail: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(status_code=status_code, detail=detail, headers=headers)


def bad_request(message: str) -> WebError:
    """A 400 error."""
    return WebError(400, message)


def not_found(message: str) -> WebError:
    """A 404 error."""
    return WebError(404, message)


def not_acceptable(message: str) -> WebError:
    """A 406 error."""
    return WebError(406, message)


def brief(error: BaseException, limit: int = 300) -> str:
    """``error``'s message as one line of at most ``limit`` characters, for a log line or an
    answer: pydicom's own messages may carry a whole traceback, or a whole value."""
    lines = str(error).strip().splitlines()
    text = lines[0] if lines else type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_uid(value: str, what: str) -> str:
    """``value`` if it is a valid DICOM UID (the store's own rule), else a 400 naming it."""
    try:
        return validation.check_uid(value, what)
    except InvalidUIDError as error:
        raise bad_request(str(error)) from None


def path_uids(request: Request, *names: str) -> list[str]:
    """The UIDs of the path parameters ``names`` (``study``, ``series``, ``instance``), checked."""
    labels = {"study": "StudyInstanceUID", "series": "SeriesInstanceUID",
              "instance": "SOPInstanceUID"}  # fmt: skip
    return [check_uid(str(request.path_params[n]), labels[n]) for n in names]


async def http_error(request: Request, exc: Exception) -> Response:
    """Exception handler: HTTP errors as ``{"error": message}``."""
    assert isinstance(exc, HTTPException)
    if exc.status_code in (204, 304):
        return Response(status_code=exc.status_code)
    return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)


async def file_gone(request: Request, exc: Exception) -> Response:
    """Exception handler: a stored file that is not there when the request reads it (its
    instance was deleted meanwhile) is a 404, as the instance is now."""
    name = Path(str(getattr(exc, "filename", "") or "")).name
    return JSONResponse({"error": f"the file {name} is gone (its instance was deleted)"},
                        status_code=404)  # fmt: skip


async def server_error(request: Request, exc: Exception) -> Response:
    """Exception handler: anything unexpected is logged and answered 500 without details."""
    log.exception("unexpected error answering %s %s", request.method, request.url.path)
    return JSONResponse({"error": "internal server error (see the server log)"}, status_code=500)

"""What a DICOMweb server is configured with, and how workers receive it (environment variables).

``dicom-repo serve`` runs uvicorn with an import string and a factory so that it can start
several worker processes; each worker builds its application from the environment with
:func:`Settings.from_env`. The CLI writes the same variables with :meth:`Settings.to_env`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TOKEN_ENV = "DICOM_REPO_TOKEN"
"""A bearer token every request must carry when set."""

_PREFIX = "DICOM_REPO_SERVE_"
DEFAULT_MAX_BODY = 2 * 1024**3
DEFAULT_MAX_RESULTS = 10_000
DEFAULT_MAX_RESULTS_ALL = 500
DEFAULT_DB_SLOTS = 10
DEFAULT_REQUEST_TIMEOUT = 300.0


@dataclass(frozen=True)
class Settings:
    """The configuration of one DICOMweb application.

    ``url``: database URL (``None``: ``$DICOM_REPO_URL``, else the SQLite default);
    ``read_urls``: hot standbys to read from (``None``: ``$DICOM_REPO_READ_URLS``);
    ``storage``: folder STOW-RS writes files to (``None``: STOW is refused);
    ``read_only``: refuse STOW-RS and DELETE with 403; ``cors_origins``: origins allowed by
    CORS (none: CORS off); ``token``: bearer token required on every request (``None``: no
    authentication); ``max_body``: largest request body in bytes; ``max_results``: QIDO-RS results
    per request when no smaller ``limit`` is asked for; ``viewer_dir``: a built OHIF Viewer
    (``dist/``) served at ``/`` with a generated ``/app-config.js``; ``keep_json``: keep the
    DICOM JSON of instances stored by STOW-RS at once (else on their first WADO-RS metadata
    request).

    Holding under load (see :mod:`.admission`, :mod:`.limits`): ``db_slots``: database
    connections per worker, and so requests that use the database at once (the thread pool is
    sized from it); ``queue_timeout``: seconds a request waits for a slot, and ``max_queue``
    requests at most wait, before 503; ``max_results_all``: QIDO-RS results per request with
    ``includefield=all``; ``body_timeout``: seconds a request body may send nothing (408);
    ``request_timeout``: seconds a whole request may take (0: no limit; see :mod:`.timeouts`);
    ``max_url`` and ``max_headers``: bytes of URL (414) and of headers (431);
    ``retry_after``: the ``Retry-After`` seconds of a 503; ``access_log``: one JSON line per
    request on standard error.
    """

    url: str | None = None
    read_urls: tuple[str, ...] | None = None
    storage: Path | None = None
    read_only: bool = False
    cors_origins: tuple[str, ...] = ()
    token: str | None = None
    max_body: int = DEFAULT_MAX_BODY
    max_results: int = DEFAULT_MAX_RESULTS
    viewer_dir: Path | None = None
    keep_json: bool = False
    db_slots: int = DEFAULT_DB_SLOTS
    queue_timeout: float = 30.0
    max_queue: int = 1000
    max_results_all: int = DEFAULT_MAX_RESULTS_ALL
    body_timeout: float = 60.0
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT
    max_url: int = 8192
    max_headers: int = 8192
    retry_after: int = 5
    access_log: bool = False

    @property
    def threads(self) -> int:
        """Threads of a worker's pool: every slot's request, and as many again for the rest
        (the feed, bodies being written, answers kept after they were sent)."""
        return 2 * self.db_slots + 8

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Settings from ``DICOM_REPO_SERVE_*`` variables (and ``DICOM_REPO_TOKEN``)."""
        env = os.environ if env is None else env

        def get(name: str) -> str | None:
            return env.get(_PREFIX + name) or None

        storage, viewer = get("STORAGE"), get("VIEWER_DIR")
        origins, reads = get("CORS_ORIGINS"), env.get(_PREFIX + "READ_DB")
        return cls(
            url=get("DB"),
            read_urls=None if reads is None else tuple(reads.split()),
            storage=Path(storage) if storage else None,
            read_only=get("READ_ONLY") == "1",
            cors_origins=tuple(origins.split(" ")) if origins else (),
            token=env.get(TOKEN_ENV) or None,
            max_body=int(get("MAX_BODY") or DEFAULT_MAX_BODY),
            max_results=int(get("MAX_RESULTS") or DEFAULT_MAX_RESULTS),
            viewer_dir=Path(viewer) if viewer else None,
            keep_json=get("KEEP_JSON") == "1",
            **_tuning(get),
            access_log=get("ACCESS_LOG") == "1",
        )

    def to_env(self) -> dict[str, str]:
        """The environment variables that :meth:`from_env` reads back into these settings."""
        env = {
            _PREFIX + "DB": self.url or "",
            **({} if self.read_urls is None else {_PREFIX + "READ_DB": " ".join(self.read_urls)}),
            _PREFIX + "STORAGE": str(self.storage or ""),
            _PREFIX + "READ_ONLY": "1" if self.read_only else "",
            _PREFIX + "CORS_ORIGINS": " ".join(self.cors_origins),
            _PREFIX + "MAX_BODY": str(self.max_body),
            _PREFIX + "MAX_RESULTS": str(self.max_results),
            _PREFIX + "VIEWER_DIR": str(self.viewer_dir or ""),
            _PREFIX + "KEEP_JSON": "1" if self.keep_json else "",
            _PREFIX + "ACCESS_LOG": "1" if self.access_log else "",
            **{_PREFIX + name.upper(): str(getattr(self, name)) for name in _TUNING},
        }
        if self.token:
            env[TOKEN_ENV] = self.token
        return env


_TUNING: dict[str, type[int] | type[float]] = {
    "db_slots": int, "queue_timeout": float, "max_queue": int, "max_results_all": int,
    "body_timeout": float, "request_timeout": float, "max_url": int, "max_headers": int,
    "retry_after": int,
}  # fmt: skip
"""The numeric settings passed to workers as ``DICOM_REPO_SERVE_<NAME>``, and their types."""


def _tuning(get: Callable[[str], str | None]) -> dict[str, Any]:
    """The :data:`_TUNING` settings given in the environment, by field name."""
    found = {name: get(name.upper()) for name in _TUNING}
    return {name: _TUNING[name](value) for name, value in found.items() if value is not None}

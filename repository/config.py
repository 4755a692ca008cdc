"""Where the database is: an explicit URL, else $DICOM_REPO_URL, else a SQLite file; and where
its read replicas are ($DICOM_REPO_READ_URLS)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from urllib.parse import quote, urlsplit

DEFAULT_URL = "sqlite:///dicom-repo.db"
"""The embedded default: a SQLite file in the current directory."""

ENV_VAR = "DICOM_REPO_URL"
READ_URLS_ENV_VAR = "DICOM_REPO_READ_URLS"
"""Read replicas (hot standbys), space-separated URLs, for stores opened without ``read_urls``."""


def resolve_url(url: str | None = None) -> str:
    """Return ``url``, else ``$DICOM_REPO_URL``, else :data:`DEFAULT_URL`.

    ``postgresql://`` URLs are pointed at the psycopg 3 driver, which this library uses; a
    libpq multi-host URL (``postgresql://u@h1:5432,h2:5433/db?target_session_attrs=read-write``)
    is rewritten to SQLAlchemy's spelling of it (``?host=h1:5432&host=h2:5433``), which hands
    libpq the same host list.
    """
    url = url or os.environ.get(ENV_VAR) or DEFAULT_URL
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            url = "postgresql+psycopg://" + url[len(prefix) :]
    if url.startswith("postgresql"):
        url = _multi_host(url)
    return url


def read_urls(urls: Sequence[str] | None = None) -> list[str]:
    """``urls`` if given (even empty), else the space-separated ``$DICOM_REPO_READ_URLS``."""
    if urls is not None:
        return list(urls)
    return os.environ.get(READ_URLS_ENV_VAR, "").split()


def _multi_host(url: str) -> str:
    """``url`` with a comma-separated host list moved into ``host=`` query parameters."""
    parts = urlsplit(url)
    userinfo, at, hosts = parts.netloc.rpartition("@")
    if "," not in hosts:
        return url
    query = "&".join(f"host={quote(host, safe=':[]')}" for host in hosts.split(",") if host)
    query = f"{query}&{parts.query}" if parts.query else query
    fragment = f"#{parts.fragment}" if parts.fragment else ""
    return f"{parts.scheme}://{userinfo}{at}{parts.path}?{query}{fragment}"


RECONNECT_ENV_VAR = "DICOM_REPO_RECONNECT_SECONDS"


def reconnect_seconds() -> float:
    """How long (seconds) a transaction that lost its connection is retried at least:
    ``$DICOM_REPO_RECONNECT_SECONDS`` (default 0, just the retry attempts), for failovers
    slower than those (Patroni waits its ``ttl`` before promoting)."""
    value = os.environ.get(RECONNECT_ENV_VAR, "")
    try:
        return max(0.0, float(value)) if value else 0.0
    except ValueError:
        raise ValueError(f"${RECONNECT_ENV_VAR} must be seconds, not {value!r}") from None

"""Where the database is: an explicit URL, else $DICOM_REPO_URL, else a SQLite file."""

from __future__ import annotations

import os

DEFAULT_URL = "sqlite:///dicom-repo.db"
"""The embedded default: a SQLite file in the current directory."""

ENV_VAR = "DICOM_REPO_URL"


def resolve_url(url: str | None = None) -> str:
    """Return ``url``, else ``$DICOM_REPO_URL``, else :data:`DEFAULT_URL`.

    ``postgresql://`` URLs are pointed at the psycopg 3 driver, which this library uses.
    """
    url = url or os.environ.get(ENV_VAR) or DEFAULT_URL
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url

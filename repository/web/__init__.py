"""DICOMweb server (QIDO-RS, WADO-RS, STOW-RS) over the repository, and a change feed.

>>> from repository.web import create_app
>>> app = create_app(url="sqlite:///dicom-repo.db")    # an ASGI application (Starlette)
"""

from __future__ import annotations

from .app import ROOT, ROUTES, app_from_env, create_app
from .settings import Settings

__all__ = ["ROOT", "ROUTES", "Settings", "app_from_env", "create_app"]

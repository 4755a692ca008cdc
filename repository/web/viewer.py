"""Serve a built OHIF Viewer (its ``dist/`` folder) at ``/``, configured for this server.

Files of the folder are served as they are; any other path that is not a file falls back to
``index.html`` (OHIF routes in the browser); ``/app-config.js`` is generated so that OHIF's
DICOMweb data source points at this server's ``/dicom-web`` on the same origin.
"""

from __future__ import annotations

import json
from pathlib import Path

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

DATA_SOURCE = "@ohif/extension-default.dataSourcesModule.dicomweb"


def app_config(root: str = "/dicom-web") -> str:
    """OHIF's ``app-config.js`` with one DICOMweb data source at ``root``."""
    source = {
        "namespace": DATA_SOURCE,
        "sourceName": "dicomweb",
        "configuration": {
            "friendlyName": "dicom-repo",
            "name": "dicom-repo",
            "wadoUriRoot": root,
            "qidoRoot": root,
            "wadoRoot": root,
            "qidoSupportsIncludeField": True,
            "supportsReject": False,
            "imageRendering": "wadors",
            "thumbnailRendering": "wadors",
            "enableStudyLazyLoad": True,
            "supportsFuzzyMatching": True,
            "supportsWildcard": True,
            "staticWado": False,
            "singlepart": "bulkdata,video",
            "bulkDataURI": {"enabled": True},
            "omitQuotationForMultipartRequest": True,
        },
    }
    # OHIF 3.13.2 iterates extensions and modes at start-up: without them it shows nothing.
    config = {
        "routerBasename": "/",
        "extensions": [],
        "modes": [],
        "customizationService": {},
        "showStudyList": True,
        "showWarningMessageForCrossOrigin": False,
        "showLoadingIndicator": True,
        "maxNumberOfWebWorkers": 3,
        "defaultDataSourceName": "dicomweb",
        "dataSources": [source],
    }
    return f"window.config = {json.dumps(config, indent=2)};\n"


class _SinglePageFiles(StaticFiles):
    """Static files with a fallback to ``index.html`` for paths that are not files.

    Paths under ``excluded`` prefixes (the DICOMweb root) keep their 404: a DICOMweb client
    asking for a resource this server lacks must not receive the viewer's HTML with a 200.
    """

    def __init__(self, directory: Path, excluded: tuple[str, ...]) -> None:
        super().__init__(directory=directory)
        self.excluded = excluded

    async def get_response(self, path: str, scope: Scope) -> Response:
        try:
            return await super().get_response(path, scope)
        except HTTPException as error:
            request_path = str(scope["path"])
            if error.status_code != 404 or any(
                request_path == prefix or request_path.startswith(prefix + "/")
                for prefix in self.excluded
            ):
                raise
            return await super().get_response("index.html", scope)


def routes(dist: Path, root: str = "/dicom-web") -> list[BaseRoute]:
    """The routes serving ``dist`` at ``/`` and the generated ``/app-config.js``.

    Unknown paths under ``root`` (the DICOMweb root) and ``/changes`` stay 404.
    """
    if not (dist / "index.html").is_file():
        raise ValueError(f"{dist} is not a built OHIF Viewer (no index.html)")
    config = app_config(root)

    async def config_js(request: Request) -> Response:
        return Response(config, media_type="application/javascript")

    async def index(request: Request) -> Response:
        return FileResponse(dist / "index.html")

    return [
        Route("/app-config.js", config_js, methods=["GET"]),
        Route("/", index, methods=["GET"]),
        Mount("/", app=_SinglePageFiles(dist, (root, "/changes")), name="viewer"),
    ]

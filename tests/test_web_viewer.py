"""``dicom-repo serve --viewer DIST``: a built OHIF Viewer on the same origin as DICOMweb."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from orthanc import UploadedFile
from web_server import WebServer, start

pytest_plugins = ("web_fixtures",)

INDEX = "<!doctype html><title>OHIF stand-in</title>"


@pytest.fixture(scope="module")
def with_viewer(web_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    """The server with a stand-in ``dist/`` (index.html and one asset)."""
    workdir = tmp_path_factory.mktemp("viewer")
    dist = workdir / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text(INDEX)
    (dist / "assets" / "app.js").write_text("console.log('viewer');")
    running = start(web_db, workdir, workers=1, args=["--viewer", str(dist)])
    yield running
    running.stop()


def test_viewer_files_spa_fallback_and_generated_config(with_viewer: WebServer) -> None:
    assert requests.get(with_viewer.url + "/", timeout=30).text == INDEX
    asset = requests.get(with_viewer.url + "/assets/app.js", timeout=30)
    assert asset.status_code == 200 and "viewer" in asset.text
    route = requests.get(with_viewer.url + "/viewer?StudyInstanceUIDs=1.2.3", timeout=30)
    assert route.status_code == 200 and route.text == INDEX
    config = requests.get(with_viewer.url + "/app-config.js", timeout=30).text
    assert "@ohif/extension-default.dataSourcesModule.dicomweb" in config
    assert '"wadoRoot": "/dicom-web"' in config and '"enableStudyLazyLoad": true' in config
    missing = requests.get(with_viewer.dicomweb + "/no/such/resource", timeout=30)
    assert missing.status_code == 404


def test_json_is_gzipped_when_accepted(server: WebServer, web_files: list[UploadedFile]) -> None:
    f = web_files[0]
    url = f"{server.dicomweb}/studies/{f.study}/series/{f.series}/metadata"
    raw = requests.get(url, headers={"Accept-Encoding": "identity"}, stream=True, timeout=30)
    body = raw.raw.read()
    assert "Content-Encoding" not in raw.headers
    packed = requests.get(url, headers={"Accept-Encoding": "gzip"}, stream=True, timeout=30)
    assert packed.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(packed.raw.read()) == body


def test_serve_refuses_a_folder_without_index_html(web_db: str, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(RuntimeError, match=r"has no index\.html"):
        start(web_db, tmp_path, workers=1, args=["--viewer", str(tmp_path / "empty")], timeout=20)

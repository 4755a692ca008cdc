"""DELETE of studies, series and instances over DICOMweb, on every backend (Citus too).

Each route from plain HTTP (httpx) and from dicomweb-client, with and without the bearer token,
404 for what is absent, 403 read-only or when the database refuses the role the write; files of
the storage folder removed only after the commit (a failed commit keeps them), files read in
place never touched; QIDO-RS, WADO-RS (the kept DICOM JSON included) and the SSE stream of every
worker reflecting a delete at once.
"""

from __future__ import annotations

import io
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pydicom
import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from orthanc import UploadedFile
from pydicom.uid import generate_uid
from sqlalchemy import text
from web_server import WebServer, read, start

import repository
from repository.engine import make_engine
from repository.ingest import ingest

pytest_plugins = ("web_fixtures",)
TOKEN = "delete-token-for-tests"
ACCEPTS = ["application/dicom", 'multipart/related; type="application/dicom"']


def new_instances(
    web_files: list[UploadedFile], study: str | None = None, series: str | None = None, n: int = 1
) -> list[pydicom.Dataset]:
    """``n`` copies of CT_small.dcm under new SOP UIDs, in one new series (and study)."""
    ct = next(f for f in web_files if f.path.name == "CT_small.dcm")
    study, series = study or generate_uid(), series or generate_uid()
    made = []
    for number in range(1, n + 1):
        ds = read(ct.path, pixels=True)
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.InstanceNumber = study, series, number
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        made.append(ds)
    return made


def _path(ds: pydicom.Dataset, level: str = "instance") -> str:
    parts = [f"studies/{ds.StudyInstanceUID}", f"series/{ds.SeriesInstanceUID}",
             f"instances/{ds.SOPInstanceUID}"]  # fmt: skip
    return "/".join(parts[: ("study", "series", "instance").index(level) + 1])


def _stored_file(server: WebServer, ds: pydicom.Dataset) -> Path:
    """The one file STOW-RS kept the instance as: ``<study>/<series>/<sop>-<token>.dcm``."""
    folder = Path(server.log).parent / "storage" / ds.StudyInstanceUID / ds.SeriesInstanceUID
    (path,) = folder.glob(f"{ds.SOPInstanceUID}-*.dcm")
    return path


def _every_worker(server: WebServer, path: str, headers: dict[str, str] | None = None) -> set[int]:
    """The status codes of GET ``path`` from both workers (a new connection each time)."""
    codes: dict[str, int] = {}
    for _ in range(300):
        answer = requests.get(f"{server.dicomweb}/{path}", headers=headers, timeout=30)
        codes[answer.headers["X-Dicom-Repo-Worker"]] = answer.status_code
        if len(codes) == 2:
            return set(codes.values())
    raise AssertionError("every answer came from one worker")


def _qido(server: WebServer, path: str) -> list[str]:
    answer = requests.get(f"{server.dicomweb}/{path}", timeout=30)
    assert answer.status_code in (200, 204), answer.text
    return [r["00080018"]["Value"][0] for r in (answer.json() if answer.content else [])]


def test_each_route_over_plain_http(
    server: WebServer, client: DICOMwebClient, web_files: list[UploadedFile]
) -> None:
    first, second, third = new_instances(web_files, n=3)
    other = new_instances(web_files, study=first.StudyInstanceUID)[0]  # a second series
    client.store_instances([first, second, third, other])
    files = [_stored_file(server, ds) for ds in (first, second, third, other)]
    assert all(f.exists() for f in files)
    with httpx.Client(base_url=server.dicomweb, timeout=30) as http:
        gone = http.delete(_path(first))
        assert (gone.status_code, gone.content) == (204, b"")
        assert not files[0].exists() and files[1].exists()
        assert http.delete(_path(first)).status_code == 404
        assert http.get(_path(first) + "/metadata").status_code == 404
        series = f"{_path(first, 'series')}/instances"
        left = sorted([second.SOPInstanceUID, third.SOPInstanceUID])
        assert sorted(_qido(server, series)) == left
        assert http.delete(_path(second, "series")).status_code == 204
        assert not files[1].exists() and not files[2].exists() and files[3].exists()
        assert _qido(server, f"{_path(first, 'study')}/instances") == [other.SOPInstanceUID]
        assert http.delete(_path(second, "series")).status_code == 404
        assert http.delete(_path(other, "study")).status_code == 204
        assert not files[3].exists()
        assert not (Path(server.log).parent / "storage" / first.StudyInstanceUID).exists()
        missing = http.delete(f"studies/{generate_uid()}")
        assert missing.status_code == 404 and "not stored" in missing.json()["error"]
        assert http.delete("studies/not-a-uid").status_code == 400
    found = requests.get(f"{server.dicomweb}/studies?StudyInstanceUID={first.StudyInstanceUID}",
                         timeout=30)  # fmt: skip
    assert found.status_code == 204 or found.json() == []


def test_dicomweb_client_deletes(
    server: WebServer, client: DICOMwebClient, web_files: list[UploadedFile]
) -> None:
    a, b = new_instances(web_files, n=2)
    c = new_instances(web_files, study=a.StudyInstanceUID)[0]
    client.store_instances([a, b, c])
    client.delete_instance(a.StudyInstanceUID, a.SeriesInstanceUID, a.SOPInstanceUID)
    assert [i["00080018"]["Value"][0] for i in client.search_for_instances(
        a.StudyInstanceUID, a.SeriesInstanceUID)] == [b.SOPInstanceUID]  # fmt: skip
    client.delete_series(c.StudyInstanceUID, c.SeriesInstanceUID)
    client.delete_study(a.StudyInstanceUID)
    assert client.search_for_studies(search_filters={"StudyInstanceUID": a.StudyInstanceUID}) == []
    with pytest.raises(requests.HTTPError) as refused:
        client.delete_study(a.StudyInstanceUID)
    assert refused.value.response.status_code == 404


def test_a_delete_is_seen_at_once_by_every_worker_and_the_stream(
    server: WebServer, client: DICOMwebClient, web_files: list[UploadedFile]
) -> None:
    ds = new_instances(web_files)[0]
    client.store_instances([ds])
    assert _every_worker(server, _path(ds) + "/metadata") == {200}  # both build and keep it
    stream = requests.get(f"{server.url}/changes/stream", stream=True, timeout=30)
    lines = stream.iter_lines(decode_unicode=True)
    assert next(lines).startswith(":")
    assert requests.delete(f"{server.dicomweb}/{_path(ds, 'study')}", timeout=30).status_code == 204
    event = _next_event(lines, ds.StudyInstanceUID)
    stream.close()
    assert event["kind"] == "STUDY_DELETED"
    assert event["payload"]["studyRemoved"] is True  # type: ignore[index]
    assert _every_worker(server, _path(ds) + "/metadata") == {404}
    assert _every_worker(server, _path(ds)) == {404}
    assert _every_worker(server, f"studies?StudyInstanceUID={ds.StudyInstanceUID}") <= {200, 204}
    for _ in range(20):  # whichever worker answers, the study is gone
        assert _qido(server, f"instances?StudyInstanceUID={ds.StudyInstanceUID}") == []


def _next_event(lines: Iterator[str], study: str) -> dict[str, object]:
    for line in lines:
        if line.startswith("data: "):
            data: dict[str, object] = orjson.loads(line[6:])
            if data["study_instance_uid"] == study:
                return data
    raise AssertionError("the stream ended without the expected event")


def test_a_readded_instance_is_served_its_new_metadata_not_the_kept_one(
    server: WebServer, client: DICOMwebClient, web_files: list[UploadedFile], web_db: str
) -> None:
    ds = new_instances(web_files)[0]
    ds.ImageComments = "first"
    client.store_instances([ds])
    url = f"{server.dicomweb}/{_path(ds)}/metadata"
    assert requests.get(url, timeout=30).json()[0]["00204000"]["Value"] == ["first"]
    engine = make_engine(web_db)
    try:
        with engine.connect() as conn:  # the server keeps the JSON after answering
            kept = (
                "SELECT count(*) FROM instance_dicom_json c JOIN instance i ON i.id = "
                "c.instance_id AND i.study_instance_uid = c.study_instance_uid "
                "WHERE i.sop_instance_uid = :sop AND c.json IS NOT NULL"
            )
            for _ in range(600):
                if conn.execute(text(kept), {"sop": ds.SOPInstanceUID}).scalar_one():
                    break
                conn.rollback()
                time.sleep(0.05)
            else:
                raise AssertionError("the server never kept the instance's JSON")
    finally:
        engine.dispose()
    assert requests.delete(f"{server.dicomweb}/{_path(ds)}", timeout=30).status_code == 204
    assert _every_worker(server, _path(ds) + "/metadata") == {404}
    ds.ImageComments = "second"
    client.store_instances([ds])
    for _ in range(10):
        assert requests.get(url, timeout=30).json()[0]["00204000"]["Value"] == ["second"]


@pytest.fixture(scope="module")
def with_token(web_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    """A writable server that wants a bearer token, with CORS for one origin."""
    workdir = tmp_path_factory.mktemp("token")
    running = start(web_db, workdir, workers=1, token=TOKEN,
                    args=["--storage", str(workdir / "storage"),
                          "--cors-origin", "http://viewer.test"])  # fmt: skip
    yield running
    running.stop()


@pytest.fixture(scope="module")
def read_only(web_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    """A read-only server that wants a bearer token."""
    workdir = tmp_path_factory.mktemp("readonly")
    running = start(web_db, workdir, workers=1, token=TOKEN, args=["--read-only"])
    yield running
    running.stop()


def test_the_token_and_read_only_mode_guard_deletes(
    with_token: WebServer, read_only: WebServer, web_files: list[UploadedFile]
) -> None:
    ds = new_instances(web_files)[0]
    DICOMwebClient(with_token.dicomweb, headers=with_token.headers()).store_instances([ds])
    for level in ("instance", "series", "study"):
        for running in (with_token, read_only):
            url = f"{running.dicomweb}/{_path(ds, level)}"
            assert httpx.delete(url, timeout=30).status_code == 401
            wrong = httpx.delete(url, headers={"Authorization": "Bearer wrong"}, timeout=30)
            assert wrong.status_code == 401
        refused = httpx.delete(f"{read_only.dicomweb}/{_path(ds, level)}",
                               headers=read_only.headers(), timeout=30)  # fmt: skip
        assert refused.status_code == 403 and "read-only" in refused.json()["error"]
    study = f"{with_token.dicomweb}/{_path(ds, 'study')}"
    preflight = httpx.options(study, timeout=30, headers={
        "Origin": "http://viewer.test", "Access-Control-Request-Method": "DELETE",
        "Access-Control-Request-Headers": "authorization"})  # fmt: skip
    assert preflight.status_code == 200  # a viewer on another origin may send DELETE
    assert "DELETE" in preflight.headers["Access-Control-Allow-Methods"]
    assert httpx.get(study + "/metadata", headers=with_token.headers(), timeout=30).is_success
    client = DICOMwebClient(with_token.dicomweb, headers=with_token.headers())
    client.delete_instance(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
    assert httpx.delete(study, headers=with_token.headers(), timeout=30).status_code == 404


REFUSE = {
    "sqlite": ["CREATE TRIGGER refuse_delete BEFORE DELETE ON study "
               "BEGIN SELECT RAISE(ABORT, 'refused by a test trigger'); END"],
    "postgresql": [
        "SET LOCAL citus.enable_unsafe_triggers = on",  # Citus: a trigger on each shard
        "CREATE FUNCTION refuse_delete() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'refused by a test trigger'; END $$",
        "CREATE CONSTRAINT TRIGGER refuse_delete AFTER DELETE ON study DEFERRABLE INITIALLY "
        "DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse_delete()",  # fails at COMMIT
    ],
}  # fmt: skip
ALLOW = {
    "sqlite": ["DROP TRIGGER refuse_delete"],
    "postgresql": [
        "SET LOCAL citus.enable_unsafe_triggers = on",
        # Citus drops a function after a multi-shard DROP TRIGGER only over one connection a node
        "SET LOCAL citus.multi_shard_modify_mode = 'sequential'",
        "DROP TRIGGER refuse_delete ON study",
        "DROP FUNCTION refuse_delete()",
    ],
}


def test_a_failed_delete_keeps_the_files(
    server: WebServer, client: DICOMwebClient, web_files: list[UploadedFile], web_db: str
) -> None:
    ds = new_instances(web_files)[0]
    client.store_instances([ds])
    stored = _stored_file(server, ds)
    engine = make_engine(web_db)
    try:
        with engine.begin() as conn:
            for statement in REFUSE[engine.dialect.name]:
                conn.execute(text(statement))
        try:
            failed = requests.delete(f"{server.dicomweb}/{_path(ds, 'study')}", timeout=30)
        finally:
            with engine.begin() as conn:
                for statement in ALLOW[engine.dialect.name]:
                    conn.execute(text(statement))
    finally:
        engine.dispose()
    assert failed.status_code == 500
    assert stored.exists()
    assert _qido(server, f"{_path(ds, 'study')}/instances") == [ds.SOPInstanceUID]
    assert requests.delete(f"{server.dicomweb}/{_path(ds, 'study')}", timeout=30).status_code == 204
    assert not stored.exists()


def test_files_read_in_place_are_never_touched(
    server: WebServer, web_files: list[UploadedFile], web_db: str, tmp_path: Path
) -> None:
    ds = new_instances(web_files)[0]
    outside = tmp_path / "in-place.dcm"
    ds.save_as(outside, enforce_file_format=True)
    inside_copy = Path(server.log).parent / "storage" / "not-recorded.dcm"
    inside_copy.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(outside, inside_copy)
    with repository.connect(web_db) as store:
        assert not ingest(store, [outside], workers=1).skipped
    assert requests.delete(f"{server.dicomweb}/{_path(ds, 'study')}", timeout=30).status_code == 204
    assert outside.exists() and inside_copy.exists()
    assert pydicom.dcmread(io.BytesIO(outside.read_bytes())).SOPInstanceUID == ds.SOPInstanceUID
    inside_copy.unlink()


@pytest.mark.postgresql
def test_a_role_that_may_only_read_is_refused_with_403(
    pg_empty_url: str, tmp_path: Path, web_files: list[UploadedFile]
) -> None:
    from test_web_metadata_cache import _role

    from repository import migrate

    made = make_engine(pg_empty_url)
    migrate.upgrade(made)
    made.dispose()
    ds = new_instances(web_files)[0]
    with repository.connect(pg_empty_url) as store:
        store.add_instances([{"StudyInstanceUID": ds.StudyInstanceUID,
                              "SeriesInstanceUID": ds.SeriesInstanceUID,
                              "SOPInstanceUID": ds.SOPInstanceUID,
                              "SOPClassUID": ds.SOPClassUID}])  # fmt: skip
    grant = 'GRANT SELECT ON ALL TABLES IN SCHEMA "{schema}" TO "{role}"'
    with _role(pg_empty_url, grant) as reader:
        running = start(reader, tmp_path, workers=1)
        try:
            refused = httpx.delete(f"{running.dicomweb}/{_path(ds, 'study')}", timeout=30)
        finally:
            running.stop()
    assert refused.status_code == 403, refused.text
    assert "refuses" in refused.json()["error"]
    with repository.connect(pg_empty_url) as store:
        assert store.get_study(ds.StudyInstanceUID) is not None


@pytest.mark.sqlite
def test_a_sqlite_database_opened_read_only_refuses_the_delete_with_403(tmp_path: Path) -> None:
    from starlette.testclient import TestClient

    from repository.web.app import create_app

    path = tmp_path / "repo.db"
    with repository.connect(f"sqlite:///{path}") as store:
        store.add_instances([{"StudyInstanceUID": "1.2.3", "SeriesInstanceUID": "1.2.3.1",
                              "SOPInstanceUID": "1.2.3.1.1"}])  # fmt: skip
    with TestClient(create_app(url=f"sqlite:///file:{path}?mode=ro&uri=true")) as client:
        refused = client.delete("/dicom-web/studies/1.2.3")
        assert refused.status_code == 403, refused.text
        assert "refuses" in refused.json()["error"]
        assert client.get("/dicom-web/studies/1.2.3/metadata").status_code == 200


@pytest.mark.parametrize(
    "accept", ["application/dicom", 'multipart/related; type="application/dicom"']
)
def test_a_file_deleted_between_the_lookup_and_the_answer_is_a_404_not_a_500(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, accept: str
) -> None:
    from starlette.testclient import TestClient

    from repository.web import files
    from repository.web.app import create_app

    ds = pydicom.dcmread(Path(pydicom.__file__).parent / "data/test_files/CT_small.dcm")
    with repository.connect(db_url) as store:
        ingest(store, [shutil.copy(ds.filename, tmp_path / "ct.dcm")], workers=1)
    checked = files.StoredInstance.require_file

    def a_delete_unlinks_it_right_after_the_check(self: files.StoredInstance) -> Path:
        path = checked(self)
        path.unlink()  # as a DELETE committed and unlinked meanwhile
        return path

    monkeypatch.setattr(
        files.StoredInstance, "require_file", a_delete_unlinks_it_right_after_the_check
    )
    url = (f"/dicom-web/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
           f"/instances/{ds.SOPInstanceUID}")  # fmt: skip
    with TestClient(create_app(url=db_url), raise_server_exceptions=False) as client:
        answer = client.get(url, headers={"Accept": accept})
    assert answer.status_code == 404, answer.text[:300]
    assert "is gone" in answer.json()["error"]

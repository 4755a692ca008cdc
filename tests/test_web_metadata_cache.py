"""WADO-RS metadata from the kept DICOM JSON (``instance_dicom_json``), on both backends.

The server keeps each instance's DICOM JSON the first time it serves it; these tests check that
a kept answer is the built one, that it is what later requests get, that no update is hidden by
it (in this server or another), that a JSON built before an update is never kept, that
BulkDataURIs still follow the request's host, and that read-only servers serve without keeping.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import orjson
import psycopg
import pytest
import requests
from conftest import _libpq_dsn
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from web_server import WebServer, start

import repository
from repository import migrate
from repository.engine import make_engine
from repository.normalize import to_dicom_json
from repository.web import metadata
from repository.web.metadata_cache import fill

STUDY, SERIES = "1.2.826.0.1.3680043.10.1011.77", "1.2.826.0.1.3680043.10.1011.77.1"
SOPS = [f"{SERIES}.{n}" for n in (1, 2, 3)]
IDENTITY = {"Accept-Encoding": "identity"}


def _instance(sop: str, number: int) -> dict[str, Any]:
    return {
        "StudyInstanceUID": STUDY, "SeriesInstanceUID": SERIES, "SOPInstanceUID": sop,
        "SOPClassUID": "1.2.840.10008.5.1.4.1.1.2", "Modality": "CT", "InstanceNumber": number,
        "SeriesDescription": "before", "PatientName": {"Alphabetic": "Doe^Jane"},
        "PixelData": {"BulkDataURI": "http://elsewhere/pixels"},
        "IconImageSequence": [{"Rows": 8, "PixelData": {"BulkDataURI": "http://elsewhere/icon"}}],
        "00091010": {"vr": "OB", "BulkDataURI": "http://elsewhere/private"},
    }  # fmt: skip


@pytest.fixture
def loaded(db_url: str) -> str:
    """``db_url`` holding one series of three instances with bulk data, nested and private."""
    with repository.connect(db_url) as store:
        store.add_instances([_instance(sop, n) for n, sop in enumerate(SOPS, start=1)])
    return db_url


@pytest.fixture
def engine(loaded: str) -> Iterator[Engine]:
    made = make_engine(loaded)
    yield made
    made.dispose()


def _get(server: WebServer, headers: dict[str, str] | None = None) -> bytes:
    url = f"{server.dicomweb}/studies/{STUDY}/series/{SERIES}/metadata"
    answer = requests.get(url, headers={**IDENTITY, **(headers or {})}, timeout=60)
    assert answer.status_code == 200, answer.text
    return answer.content


def _kept(engine: Engine) -> dict[str, tuple[int, str | None]]:
    """SOP Instance UID -> (generation, JSON) of the kept rows."""
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT i.sop_instance_uid, c.generation, c.json FROM instance_dicom_json c "
            "JOIN instance i ON i.id = c.instance_id"
        ))  # fmt: skip
        return {sop: (generation, json) for sop, generation, json in rows}


def _wait_kept(engine: Engine, count: int = len(SOPS)) -> None:
    """Wait for the server to keep ``count`` instances' JSON (it does so after answering)."""
    deadline = time.monotonic() + 60
    while sum(json is not None for _, json in _kept(engine).values()) < count:
        assert time.monotonic() < deadline, f"the server kept {_kept(engine)}"
        time.sleep(0.05)


def _absolute(elements: dict[str, Any], base: str) -> dict[str, Any]:
    for tag, element in elements.items():
        if "BulkDataURI" in element:
            element["BulkDataURI"] = f"{base}/{tag}"
        for index, item in enumerate(element.get("Value") or ()):
            if element["vr"] == "SQ":
                _absolute(item, f"{base}/{tag}/{index}")
    return elements


def _expected(db_url: str, root: str) -> list[dict[str, Any]]:
    """What the answer must be: each instance's stored metadata as DICOM JSON, bulk data at
    ``root``, by instance number (computed here from the store, not by the server's code)."""
    with repository.connect(db_url) as store:
        series = store.get_series(STUDY, SERIES)
    assert series is not None
    return [
        _absolute(to_dicom_json(dict(i.metadata)),
                  f"{root}/studies/{STUDY}/series/{SERIES}/instances/{i.sop_instance_uid}/bulkdata")
        for i in sorted(series.instances, key=lambda i: i.metadata["InstanceNumber"])
    ]  # fmt: skip


def test_later_answers_are_the_kept_json_equal_to_the_built_one(
    loaded: str, engine: Engine, tmp_path: Path
) -> None:
    server = start(loaded, tmp_path, workers=1)
    try:
        built = _get(server)
        _wait_kept(engine)
        kept = _get(server)
        assert kept == built
        assert orjson.loads(kept) == _expected(loaded, server.dicomweb)
        marked = b'{"00080018":{"vr":"UI","Value":["%s"]}}' % SOPS[1].encode()
        with engine.begin() as conn:  # the kept row alone, not the instance's metadata
            conn.execute(text(
                "UPDATE instance_dicom_json SET json = :json WHERE instance_id = "
                "(SELECT id FROM instance WHERE sop_instance_uid = :sop)"
            ), {"json": marked.decode(), "sop": SOPS[1]})  # fmt: skip
        assert orjson.loads(_get(server))[1] == orjson.loads(marked)
    finally:
        server.stop()


def test_an_update_is_in_the_next_answer_of_every_server(
    loaded: str, engine: Engine, tmp_path: Path
) -> None:
    first, second = start(loaded, tmp_path / "a", workers=1), start(loaded, tmp_path / "b")
    try:
        _get(first)
        _wait_kept(engine)
        assert _get(second) == _get(first).replace(
            first.dicomweb.encode(), second.dicomweb.encode()
        )
        with repository.connect(loaded) as store:
            store.update_metadata_for_series(STUDY, SERIES, {"SeriesDescription": "after"})
        for server in (first, second, first):
            answer = orjson.loads(_get(server))
            assert [i["0008103E"]["Value"] for i in answer] == [["after"]] * len(SOPS)
            assert answer == _expected(loaded, server.dicomweb)
    finally:
        first.stop()
        second.stop()


def _instance_id(engine: Engine, sop: str) -> int:
    with engine.connect() as conn:
        found = conn.execute(text("SELECT id FROM instance WHERE sop_instance_uid = :sop"),
                             {"sop": sop}).scalar_one()  # fmt: skip
        return int(found)


def _read(engine: Engine, id_: int) -> str:
    """The instance's metadata as the server reads it to build its JSON (text)."""
    with engine.connect() as conn:
        found = conn.execute(text("SELECT CAST(metadata AS TEXT) FROM instance WHERE id = :id"),
                             {"id": id_}).scalar_one()  # fmt: skip
        return str(found)


def test_json_built_from_metadata_read_before_an_update_is_never_kept(
    loaded: str, engine: Engine
) -> None:
    first, second = _instance_id(engine, SOPS[0]), _instance_id(engine, SOPS[1])
    read = {first: _read(engine, first), second: _read(engine, second)}
    assert fill(engine, [(first, 0, b'"built first"', read[first])])
    assert _kept(engine)[SOPS[0]] == (0, '"built first"')
    with repository.connect(loaded) as store:  # after the reads at generation 0 (no row)
        store.update_metadata_for_series(STUDY, SERIES, {"SeriesDescription": "after"})
    assert _kept(engine)[SOPS[0]] == (1, None) and _kept(engine)[SOPS[1]] == (1, None)
    fill(engine, [(first, 0, b'"stale"', read[first]), (second, 0, b'"stale"', read[second])])
    assert _kept(engine)[SOPS[0]] == (1, None) and _kept(engine)[SOPS[1]] == (1, None)
    read = {first: _read(engine, first)}  # what a read after the update sees
    fill(engine, [(first, 1, b'"fresh"', read[first])])
    assert _kept(engine)[SOPS[0]] == (1, '"fresh"')
    fill(engine, [(first, 1, b'"again"', read[first])])  # a concurrent fill of the same generation
    assert _kept(engine)[SOPS[0]] == (1, '"fresh"')


def test_bulk_data_uris_follow_the_request_host(
    loaded: str, engine: Engine, tmp_path: Path
) -> None:
    server = start(loaded, tmp_path, workers=1)
    try:
        _get(server)
        _wait_kept(engine)
        for host, proto in (("pacs.example:8443", "https"), ("viewer.local", "http")):
            answer = orjson.loads(_get(server, {"Host": host, "X-Forwarded-Proto": proto}))
            root = f"{proto}://{host}/dicom-web"
            assert answer == _expected(loaded, root)
            base = f"{root}/studies/{STUDY}/series/{SERIES}/instances/{SOPS[0]}/bulkdata"
            assert answer[0]["7FE00010"]["BulkDataURI"] == f"{base}/7FE00010"
            assert answer[0]["00880200"]["Value"][0]["7FE00010"]["BulkDataURI"] == (
                f"{base}/00880200/0/7FE00010"
            )
            assert answer[0]["00091010"]["BulkDataURI"] == f"{base}/00091010"
    finally:
        server.stop()


def test_a_read_only_server_serves_without_keeping(
    loaded: str, engine: Engine, tmp_path: Path
) -> None:
    server = start(loaded, tmp_path, workers=1, args=["--read-only"])
    try:
        answers = [_get(server), _get(server)]
    finally:
        server.stop()  # waits for what runs after an answer
    assert orjson.loads(answers[0]) == orjson.loads(answers[1])
    assert orjson.loads(answers[0]) == _expected(loaded, server.dicomweb)
    assert _kept(engine) == {}


@pytest.fixture
def pg_loaded(pg_empty_url: str) -> str:
    """A PostgreSQL schema holding the series of :func:`loaded`."""
    made = make_engine(pg_empty_url)
    migrate.upgrade(made)
    made.dispose()
    with repository.connect(pg_empty_url) as store:
        store.add_instances([_instance(sop, n) for n, sop in enumerate(SOPS, start=1)])
    return pg_empty_url


@contextmanager
def _role(url: str, *grants: str) -> Iterator[str]:
    """A URL of ``url`` (PostgreSQL) as a new role given ``grants`` ({schema}, {role} filled)."""
    role = f"role_{uuid.uuid4().hex[:8]}"
    schema = str(make_url(url).query["options"]).split("=")[1]
    with psycopg.connect(_libpq_dsn(url), autocommit=True) as conn:
        conn.execute(f'CREATE ROLE "{role}" LOGIN')
        conn.execute(f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"')
        for grant in grants:
            conn.execute(grant.format(schema=schema, role=role))
    try:
        yield make_url(url).set(username=role).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(_libpq_dsn(url), autocommit=True) as conn:
            conn.execute(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                         f"WHERE usename = '{role}'")  # fmt: skip
            conn.execute(f'DROP OWNED BY "{role}"')
            conn.execute(f'DROP ROLE "{role}"')


@pytest.fixture
def reader(pg_loaded: str) -> Iterator[str]:
    """A URL of :func:`pg_loaded` as a role that may only read."""
    with _role(pg_loaded, 'GRANT SELECT ON ALL TABLES IN SCHEMA "{schema}" TO "{role}"') as url:
        yield url


@pytest.mark.postgresql
def test_a_writer_not_granted_the_kept_json_still_updates_and_makes_it_stale(
    pg_loaded: str,
) -> None:
    made = make_engine(pg_loaded)
    first = _instance_id(made, SOPS[0])
    fill(made, [(first, 0, b'"kept"', None)])
    grants = ('GRANT ALL ON ALL TABLES IN SCHEMA "{schema}" TO "{role}"',
              'GRANT ALL ON ALL SEQUENCES IN SCHEMA "{schema}" TO "{role}"',
              'REVOKE ALL ON instance_dicom_json FROM "{role}"')  # fmt: skip
    try:
        with _role(pg_loaded, *grants) as writer, repository.connect(writer) as store:
            store.update_metadata_for_series(STUDY, SERIES, {"SeriesDescription": "after"})
        assert _kept(made)[SOPS[0]] == (1, None)
    finally:
        made.dispose()


@pytest.mark.postgresql
def test_a_role_that_may_only_read_serves_without_keeping(
    pg_loaded: str, reader: str, tmp_path: Path
) -> None:
    server = start(reader, tmp_path, workers=1)
    try:
        answers = [_get(server), _get(server)]
    finally:
        server.stop()
    assert orjson.loads(answers[0]) == orjson.loads(answers[1])
    assert orjson.loads(answers[0]) == _expected(pg_loaded, server.dicomweb)
    made = make_engine(pg_loaded)
    try:
        assert _kept(made) == {}
    finally:
        made.dispose()
    assert "not kept" in server.log.read_text()


def test_answers_in_parts_keep_a_bounded_amount_each(
    loaded: str, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = "http://pacs.example/dicom-web"

    def answer() -> tuple[bytes, int]:
        rows = metadata._Rows(engine, [STUDY, SERIES])
        body = b"".join(rows.chunks(root))
        fill(engine, rows.fills)
        return body, len(rows.fills)

    monkeypatch.setattr(metadata, "CHUNK", 2)  # two queries
    monkeypatch.setattr(metadata, "PART", 1)  # one part per instance
    whole, _ = answer()
    assert orjson.loads(whole) == _expected(loaded, root)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM instance_dicom_json"))
    one = max(len(orjson.dumps(i)) for i in orjson.loads(whole))
    monkeypatch.setattr(metadata, "KEEP_AT_MOST", one)
    assert [answer() for _ in SOPS] == [(whole, 1)] * len(SOPS)
    assert answer() == (whole, 0)
    assert all(json is not None for _, json in _kept(engine).values())


def test_an_answer_whose_client_left_before_it_streamed_gives_its_connection_back(
    loaded: str, engine: Engine
) -> None:
    rows = metadata._Rows(engine, [STUDY, SERIES])
    answer = metadata._Answer(rows, "http://pacs.example/dicom-web", "application/json", None)

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        await anyio.sleep(5)  # the client is gone: the response start never goes out

    scope = {"type": "http", "method": "GET", "headers": []}
    try:
        anyio.run(answer, scope, receive, send)
        assert rows.closed
        assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    finally:
        rows.close()  # else a failure here leaves a transaction open that blocks the teardown


def test_json_built_for_a_deleted_instance_is_never_kept_for_another(
    loaded: str, engine: Engine
) -> None:
    """A fill that lands after its instance was deleted and another stored (SQLite hands the
    deleted largest id to the next instance) keeps nothing for the newcomer."""
    rows = metadata._Rows(engine, [STUDY, SERIES, SOPS[-1]])
    b"".join(rows.chunks("http://pacs.example/dicom-web"))
    gone = _instance_id(engine, SOPS[-1])
    newcomer = f"{SERIES}.99"
    with repository.connect(loaded) as store:
        store.delete_instances(STUDY, SERIES, [SOPS[-1]])
        store.add_instances([{**_instance(newcomer, 99), "SeriesDescription": "newcomer"}])
    reused = _instance_id(engine, newcomer) == gone
    fill(engine, rows.fills)  # the fill of the answer sent before the delete
    assert newcomer not in {sop for sop, (_, json) in _kept(engine).items() if json}
    again = metadata._Rows(engine, [STUDY, SERIES, newcomer])
    served = orjson.loads(b"".join(again.chunks("http://pacs.example/dicom-web")))
    assert served[0]["00080018"]["Value"] == [newcomer], f"id reused: {reused}"


def test_json_kept_at_ingest_is_what_the_server_would_build_and_answers_the_first_request(
    db_url: str, tmp_path: Path
) -> None:
    """``keep_json`` (``ingest --keep-json``, ``serve --keep-json``): the DICOM JSON is kept in
    the adding transaction, so the first request reads kept bytes, the same answer as built."""
    from repository.normalize import normalize_instance

    instances = [normalize_instance(_instance(sop, n), source=sop)
                 for n, sop in enumerate(SOPS, start=1)]  # fmt: skip
    with repository.connect(db_url) as store:
        store.add_normalized(instances[:1])  # without: nothing kept
        store.add_normalized(instances, keep_json=True)  # the first is already stored
    made = make_engine(db_url)
    try:
        kept = _kept(made)
        assert sorted(kept) == SOPS[1:] and all(g == 0 and j for g, j in kept.values())
        server = start(db_url, tmp_path, workers=1)
        try:
            first = _get(server)
            assert orjson.loads(first) == _expected(db_url, server.dicomweb)
            _wait_kept(made)  # the server keeps the one instance it had to build
            assert _kept(made)[SOPS[1]] == kept[SOPS[1]]  # kept rows left as they were
            assert _get(server) == first
        finally:
            server.stop()
    finally:
        made.dispose()

"""The DICOMweb server (``dicom-repo serve``) against its honest alternatives, in one run.

- ``serve-metadata``: WADO-RS metadata of a 1000-instance series over HTTP, warm (the server
  keeps each instance's DICOM JSON) vs the bare driver reading the same kept JSON, and cold (the
  first request) vs the bare driver converting the stored metadata (bench/serve_metadata.py).
- ``serve-orthanc`` (``--orthanc URL``): the same series, written as files, uploaded to that
  Orthanc and ingested here: Orthanc's WADO-RS series metadata time vs ours, warm and cold.
- ``serve-qido``: QIDO-RS study search (PatientName wildcard + StudyDate range, OHIF's limit of
  101) p50 over a database of ``size`` instances, with the SQL and its query plan.
- ``serve-workers``: series metadata requests per second with 2 workers vs 1, the load made by
  ``wrk`` (skipped, saying so, when it is not installed).
"""

from __future__ import annotations

import copy
import datetime as dt
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import chain, islice
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import requests
import sqlalchemy as sa

import repository
from repository import migrate
from repository.engine import make_engine
from repository.ingest import ingest
from repository.normalize import NormalizedInstance
from repository.web import qido, qido_sql
from repository.web.attributes import STUDY

from .common import backend, create, drop, emit, scoped_url
from .corpus import (
    ROOT,
    SeriesShape,
    _fill,
    _template,
    normalized_instances,
    target_study,
)
from .server import get_whole, serving, wait_kept


def _median_get(session: requests.Session, url: str, repeat: int) -> float:
    get_whole(session, url)
    return statistics.median(_timed(lambda: get_whole(session, url)) for _ in range(repeat))


def _timed(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _series_files(folder: Path, count: int = 1000) -> tuple[str, str, list[Path]]:
    """``count`` Part-10 files of one axial CT series (real pixel data); its UIDs and paths."""
    study = f"{ROOT}.888888.{os.getpid()}"
    series = f"{study}.1"
    shape = SeriesShape("CT", count)
    paths = []
    for n in range(count):
        ds = copy.deepcopy(_template("CT"))
        _fill(ds, study, series, f"{series}.{n + 1}", shape, n, 1)
        paths.append(folder / f"{n + 1}.dcm")
        ds.save_as(paths[-1])
    return study, series, paths


def orthanc(url: str, orthanc_url: str, repeat: int = 5) -> None:
    """The same 1000 files in Orthanc and here: WADO-RS series metadata, Orthanc vs ours; warm,
    and the first request after an ingest without and with ``keep_json`` (and what it cost)."""
    with tempfile.TemporaryDirectory() as folder:
        study, series, paths = _series_files(Path(folder))
        upload = f"{orthanc_url}/instances"
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda p: requests.post(upload, data=p.read_bytes(), timeout=60),
                          paths))  # fmt: skip
        path = f"/studies/{study}/series/{series}/metadata"
        with requests.Session() as session:
            theirs = _median_get(session, f"{orthanc_url}/dicom-web{path}", repeat)
            plain = _first_request(url, session, paths, path, series, keep_json=False)
            kept = _first_request(url, session, paths, path, series, keep_json=True)
    ours = plain["warm"]
    emit("serve-orthanc", url, ours, "s", theirs, ours / theirs, instances=len(paths),
         cold=round(plain["first"], 4), cold_ratio=round(plain["first"] / theirs, 3),
         first_keep_json=round(kept["first"], 4),
         first_keep_json_ratio=round(kept["first"] / theirs, 3),
         ingest_s=round(plain["ingest"], 3), ingest_keep_json_s=round(kept["ingest"], 3),
         ingest_cost=round(kept["ingest"] / plain["ingest"], 3), load=os.getloadavg()[0],
         target="ratio < 0.05")  # fmt: skip


def _first_request(
    url: str, session: requests.Session, paths: list[Path], path: str, series: str,
    *, keep_json: bool,
) -> dict[str, float]:  # fmt: skip
    """Ingest ``paths`` (timed) into a fresh schema, then time the first request and the median
    of later ones."""
    name = f"bench_serve_orthanc_{os.getpid()}_{int(keep_json)}"
    scoped = create(url, name)
    try:
        with repository.connect(scoped) as store:
            took = _timed(lambda: ingest(store, paths, workers=2, keep_json=keep_json))
        with serving(scoped) as root:
            first = _timed(lambda: get_whole(session, root + path))
            wait_kept(scoped, series, len(paths))
            warm = _median_get(session, root + path, 5)
    finally:
        drop(url, name)
    return {"ingest": took, "first": first, "warm": warm}


def _varied(instances: Iterator[NormalizedInstance]) -> Iterator[NormalizedInstance]:
    """Give each study its own patient name and study date (the corpus repeats its template)."""
    for inst in instances:
        number = sum(map(ord, inst.study_instance_uid)) * 7919 + len(inst.study_instance_uid)
        inst.metadata["PatientName"] = {"Alphabetic": f"Doe{number % 997}^Pat{number % 89}"}
        day = dt.date(2000, 1, 1) + dt.timedelta(days=number % 9000)
        inst.metadata["StudyDate"] = day.strftime("%Y%m%d")
        yield inst


def prepare_qido(url: str, size: int) -> str:
    """A database of ``size`` instances with varied names and dates (reused if present)."""
    name = f"bench_serve_{size}"
    scoped = scoped_url(url, name)
    engine = make_engine(scoped)
    try:
        with engine.connect() as conn:
            found = conn.execute(sa.text("SELECT count(*) FROM instance")).scalar_one()
        if found == size:
            migrate.upgrade(engine)  # filled by an older version: migrations may add tables
            return scoped
    except sa.exc.DBAPIError:
        pass
    finally:
        engine.dispose()
    create(url, name)
    instances = _varied(chain(target_study(), normalized_instances(size - 3000, seed=3)))
    with repository.connect(scoped) as store:
        while batch := list(islice(instances, 5000)):
            store.add_normalized(batch)
    engine = make_engine(scoped)
    with engine.begin() as conn:
        conn.execute(sa.text("ANALYZE"))
    engine.dispose()
    return scoped


QIDO_QUERY = "PatientName=*oe1*&StudyDate=20100101-20141231"


def qido_search(url: str, scoped: str, repeat: int = 50) -> None:
    """QIDO-RS study search p50 (as OHIF sends it) and the query plan of its SQL."""
    params = f"limit=101&offset=0&fuzzymatching=false&includefield=00081030%2C00080060&{QIDO_QUERY}"
    search, _ = qido.parse(parse_qsl(params), STUDY, {}, 10_000)
    engine = make_engine(scoped)
    with engine.connect() as conn:
        stmt = qido_sql.statement(search, conn.dialect.name)
        sql = str(stmt.compile(conn, compile_kwargs={"literal_binds": True}))
        explain = "EXPLAIN QUERY PLAN " if conn.dialect.name == "sqlite" else "EXPLAIN "
        plan = [" ".join(map(str, row)) for row in conn.execute(sa.text(explain + sql))]
        start = time.perf_counter()
        found = len(conn.execute(stmt).all())
        sql_time = time.perf_counter() - start
    engine.dispose()
    with serving(scoped) as root, requests.Session() as session:
        p50 = _median_get(session, f"{root}/studies?{params}", repeat)
        matches = len(session.get(f"{root}/studies?{params}").json())
    emit("serve-qido", url, p50, "s", sql_time, p50 / sql_time, matches=matches, rows=found,
         target="value < 0.050", sql=" ".join(sql.split()), plan=plan)  # fmt: skip


def run(url: str, size: int, orthanc_url: str | None) -> None:
    """Every serve bench on a ``size``-instance database."""
    from . import serve_metadata

    scoped = prepare_qido(url, size)
    print(f"database: {backend(url)} {size} instances", file=sys.stderr)
    serve_metadata.metadata(url, scoped)
    qido_search(url, scoped)
    serve_metadata.workers(url, scoped)
    if orthanc_url:
        orthanc(url, orthanc_url)

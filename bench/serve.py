"""The DICOMweb server (``dicom-repo serve``) against its honest alternatives, in one run.

- ``serve-metadata``: WADO-RS metadata of a 1000-instance series over HTTP vs the raw driver
  reading the same rows and serializing them as the same DICOM JSON in-process.
- ``serve-orthanc`` (``--orthanc URL``): the same series, written as files, uploaded to that
  Orthanc and ingested here: Orthanc's WADO-RS series metadata time vs ours.
- ``serve-qido``: QIDO-RS study search (PatientName wildcard + StudyDate range, OHIF's limit of
  101) p50 over a database of ``size`` instances, with the SQL and its query plan.
- ``serve-workers``: metadata requests per second with 2 workers vs 1 (concurrent clients).
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from itertools import chain, islice
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import orjson
import requests
import sqlalchemy as sa

import repository
from repository.engine import make_engine
from repository.ingest import ingest
from repository.normalize import NormalizedInstance, to_dicom_json
from repository.web import qido, qido_sql
from repository.web.attributes import STUDY

from .common import backend, create, emit, scoped_url
from .corpus import TARGET_SERIES, TARGET_STUDY, normalized_instances, target_study, write_files
from .reads import SERIES_SQL, _raw

NO_GZIP = {"Accept-Encoding": "identity"}


@contextmanager
def serving(url: str, workers: int = 1) -> Iterator[str]:
    """``dicom-repo serve`` on a free port; yields its DICOMweb root."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [sys.executable, "-c", "from repository.cli import main; main()", "--db", url,
               "serve", "--port", str(port), "--workers", str(workers)]  # fmt: skip
    process = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL)
    root = f"http://127.0.0.1:{port}/dicom-web"
    try:
        for _ in range(600):
            try:
                if requests.get(f"{root}/studies?limit=1", timeout=5).ok:
                    break
            except requests.RequestException:
                time.sleep(0.1)
        yield root
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)


def _median_get(session: requests.Session, url: str, repeat: int) -> float:
    session.get(url, headers=NO_GZIP).raise_for_status()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        answer = session.get(url, headers=NO_GZIP)
        answer.raise_for_status()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _raw_metadata(query: Any, series: str) -> bytes:
    rows = query(SERIES_SQL, (series,))
    return orjson.dumps([to_dicom_json(orjson.loads(text)) for (text,) in rows])


def metadata(url: str, scoped: str, repeat: int = 15) -> None:
    """WADO-RS series metadata of the 1000-instance target series vs raw read + serialization."""
    series_url = f"/studies/{TARGET_STUDY}/series/{TARGET_SERIES[0]}/metadata"
    with _raw(scoped) as query:
        _raw_metadata(query, TARGET_SERIES[0])
        raw = statistics.median(
            _timed(lambda: _raw_metadata(query, TARGET_SERIES[0])) for _ in range(repeat)
        )
    with serving(scoped) as root, requests.Session() as session:
        served = _median_get(session, root + series_url, repeat)
        size = len(session.get(root + series_url, headers=NO_GZIP).content)
    emit("serve-metadata", url, served, "s", raw, served / raw, instances=1000, bytes=size,
         target="ratio <= 1.3")  # fmt: skip


def _timed(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def orthanc(url: str, orthanc_url: str, repeat: int = 5) -> None:
    """The same 1000 files in Orthanc and here: WADO-RS series metadata, Orthanc vs ours."""
    with tempfile.TemporaryDirectory() as folder:
        paths = write_files(Path(folder), 1000, seed=7)
        series = {p.name.rsplit(".", 2)[0] for p in paths}
        study_series = max(series, key=lambda s: sum(p.name.startswith(s + ".") for p in paths))
        chosen = [p for p in paths if p.name.startswith(study_series + ".")]
        upload = f"{orthanc_url}/instances"
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda p: requests.post(upload, data=p.read_bytes(), timeout=60),
                          chosen))  # fmt: skip
        name = f"bench_serve_orthanc_{os.getpid()}"
        scoped = create(url, name)
        with repository.connect(scoped) as store:
            ingest(store, chosen, workers=2)
        study = study_series.rsplit(".", 1)[0]
        path = f"/studies/{study}/series/{study_series}/metadata"
        with requests.Session() as session:
            theirs = _median_get(session, f"{orthanc_url}/dicom-web{path}", repeat)
            with serving(scoped) as root:
                ours = _median_get(session, root + path, repeat)
    emit("serve-orthanc", url, ours, "s", theirs, ours / theirs, instances=len(chosen),
         target="ratio < 0.05")  # fmt: skip


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
            if conn.execute(sa.text("SELECT count(*) FROM instance")).scalar_one() == size:
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


def _hammer(root: str, paths: list[str], seconds: float, clients: int) -> float:
    deadline = time.perf_counter() + seconds

    def client(offset: int) -> int:
        done = 0
        with requests.Session() as session:
            while time.perf_counter() < deadline:
                path = paths[(offset + done) % len(paths)]
                session.get(root + path, headers=NO_GZIP).raise_for_status()
                done += 1
        return done

    with ThreadPoolExecutor(clients) as pool:
        total = sum(pool.map(client, range(0, clients * 97, 97)))
    return total / seconds


def workers(url: str, scoped: str, seconds: float = 10.0, clients: int = 8) -> None:
    """Instance metadata requests/s (instances of a 1000-instance series) of 2 workers vs 1."""
    series = f"/studies/{TARGET_STUDY}/series/{TARGET_SERIES[1]}"
    paths = [f"{series}/instances/{TARGET_SERIES[1]}.{n}/metadata" for n in range(1, 1001)]
    rates = {}
    for count in (1, 2):
        with serving(scoped, workers=count) as root:
            _hammer(root, paths, 1.0, clients)
            rates[count] = _hammer(root, paths, seconds, clients)
    emit("serve-workers", url, rates[2], "req/s", rates[1], rates[2] / rates[1],
         clients=clients, target="ratio >= 1.7", cpus=os.cpu_count())  # fmt: skip


def run(url: str, size: int, orthanc_url: str | None) -> None:
    """Every serve bench on a ``size``-instance database."""
    scoped = prepare_qido(url, size)
    print(f"database: {backend(url)} {size} instances", file=sys.stderr)
    metadata(url, scoped)
    qido_search(url, scoped)
    workers(url, scoped)
    if orthanc_url:
        orthanc(url, orthanc_url)

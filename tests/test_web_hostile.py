"""Hostile and malformed requests to ``dicom-repo serve``: each a 4xx with a JSON error, none a
500, no traceback in the server's log; and what an operator scrapes (/healthz, /readyz, /metrics).
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import requests
from orthanc import UploadedFile
from web_server import WebServer, start

pytest_plugins = ("web_fixtures",)
TOKEN = "hostile-token"
BIG = [str(2**31), str(2**63), "1" + "0" * 30]


@pytest.fixture(scope="module")
def strict(web_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    """One worker with a token, STOW-RS, a 1 s body timeout, 2 results with includefield=all
    and JSON access logs."""
    workdir = tmp_path_factory.mktemp("strict")
    (workdir / "token").write_text(TOKEN)
    running = start(web_db, workdir, workers=1, token=TOKEN, args=[
        "--token-file", str(workdir / "token"), "--storage", str(workdir / "storage"),
        "--body-timeout", "1", "--max-results-all", "2", "--access-log",
    ])  # fmt: skip
    yield running
    running.stop()


def _instance_url(server: WebServer, f: UploadedFile) -> str:
    return f"{server.dicomweb}/studies/{f.study}/series/{f.series}/instances/{f.sop}"


def _hostile_gets(server: WebServer, ct: UploadedFile) -> list[tuple[str, dict[str, str]]]:
    """(URL, extra headers) of requests that must each be refused with a 4xx."""
    root, frames = server.dicomweb, _instance_url(server, ct) + "/frames/"
    gets = [f"{root}/studies?PatientName=Doe%00", f"{root}/studies?PatientID=%00",
            f"{root}/studies?offset=%C2%B2", f"{root}/studies?offset=1_0",
            f"{root}/studies?offset=%201", f"{root}/studies?limit=0",
            f"{root}/studies?limit=-1", f"{root}/instances?includefield=all&limit=3",
            f"{server.url}/changes?limit=0", f"{server.url}/changes?since=%D9%A1",
            frames + "%201", frames + "1_0", frames + "%C2%B2", frames + "0", frames + "1,1",
            frames + ",".join(["1"] * 3000), f"{root}/studies?PatientID=" + "x" * 9000]  # fmt: skip
    rendered = f"{_instance_url(server, ct)}/rendered"
    gets += [frames + "1_0/rendered", f"{rendered}?quality=%C2%B2", f"{rendered}?viewport=1_0,9",
             f"{rendered}?viewport=%D9%A1,9", f"{rendered}?window=40,4e2",
             f"{rendered}?window=%D9%A1,400"]  # fmt: skip
    for big in BIG:
        gets += [f"{root}/studies?offset={big}", f"{root}/series?SeriesNumber={big}",
                 f"{root}/instances?InstanceNumber=-{big}0",
                 f"{root}/instances?InstanceNumber={big}", frames + big]  # fmt: skip
    gets += [f"{server.url}/changes?since={big}" for big in BIG[1:]]  # seqs are 64-bit
    hostile: list[tuple[str, dict[str, str]]] = [(url, {}) for url in gets]
    hostile += [(f"{server.url}/changes/stream", {"Last-Event-ID": "1" + "0" * 30}),
                (f"{server.url}/changes/stream", {"Last-Event-ID": str(2**63)}),
                (_instance_url(server, ct), {"Accept": "application/dicom", "Range": "bytes=x"}),
                (_instance_url(server, ct), {"Accept": "application/dicom",
                                             "Range": "bytes=99999999-"}),
                (_instance_url(server, ct), {"Accept": "application/dicom",
                                             "Range": "bytes=1_0-2_0"}),
                (f"{root}/studies", {"X-Padding": "x" * 12_000})]  # fmt: skip
    return hostile


def test_hostile_requests_are_4xx_json_errors_without_tracebacks(
    strict: WebServer, web_files: list[UploadedFile]
) -> None:
    ct = next(f for f in web_files if f.path.name == "CT_small.dcm")
    auth = strict.headers()
    for url, headers in _hostile_gets(strict, ct):
        answer = requests.get(url, headers={**auth, **headers}, timeout=30)
        assert 400 <= answer.status_code < 500, (url[:200], headers, answer.status_code)
        assert "error" in answer.json(), url[:200]
    put = requests.put(f"{strict.dicomweb}/studies", headers=auth, timeout=30)
    assert put.status_code == 405 and "error" in put.json()
    assert {"GET", "POST"} <= {m.strip() for m in put.headers["Allow"].split(",")}
    truncated = requests.post(
        f"{strict.dicomweb}/studies", data=b"--b\r\nContent-Type: application/dicom\r\n\r\nDICM",
        headers={**auth, "Content-Type": 'multipart/related; type="application/dicom"; boundary=b'},
        timeout=30,
    )  # fmt: skip
    assert truncated.status_code == 400 and "truncated" in truncated.json()["error"]
    lower = requests.get(f"{strict.dicomweb}/studies", timeout=30,
                         headers={"Authorization": f"bearer {TOKEN}"})  # fmt: skip
    assert lower.status_code == 200
    assert "Traceback" not in strict.log.read_text()


@pytest.mark.parametrize(
    ("accept", "status"),
    [(";;;", 200), (", ;", 200), ("*/*;q=0.0", 406), ("application/dicom+json;q=0.000", 406),
     ("application/dicom+json;q=abc", 200), ("*/*;q=", 200), ("nonsense", 406)],
)  # fmt: skip
def test_an_accept_header_naming_nothing_is_the_default_and_q_0_refuses(
    strict: WebServer, web_files: list[UploadedFile], accept: str, status: int
) -> None:
    ct = next(f for f in web_files if f.path.name == "CT_small.dcm")
    for url in (f"{strict.dicomweb}/studies", f"{strict.dicomweb}/studies/{ct.study}/series"):
        answer = requests.get(url, headers={**strict.headers(), "Accept": accept}, timeout=30)
        assert answer.status_code == status, (url, accept, answer.text[:200])
        if status == 406:
            assert "error" in answer.json()
    assert "Traceback" not in strict.log.read_text()


def test_an_upload_that_stalls_is_dropped_with_its_part_file(strict: WebServer) -> None:
    head = (
        f"POST /dicom-web/studies HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
        'Content-Type: multipart/related; type="application/dicom"; boundary=b\r\n'
        f"Content-Length: {10**9}\r\n\r\n--b\r\nContent-Type: application/dicom\r\n\r\nDICM"
    )
    incoming = Path(strict.log).parent / "storage" / ".incoming"
    with socket.create_connection(("127.0.0.1", strict.port), timeout=30) as sock:
        sock.sendall(head.encode())
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert not list(incoming.glob("*.part"))


def _metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_operators_scrape_health_readiness_and_metrics(
    strict: WebServer, web_files: list[UploadedFile]
) -> None:
    assert requests.get(f"{strict.url}/healthz", timeout=30).json() == {"status": "ok"}
    ready = requests.get(f"{strict.url}/readyz", timeout=30)  # no token needed for probes
    assert ready.status_code == 200
    assert ready.json()["revision"] == ready.json()["expected_revision"]
    auth = strict.headers()
    assert requests.get(f"{strict.url}/metrics", timeout=30).status_code == 401
    scraped = requests.get(f"{strict.url}/metrics", headers=auth, timeout=30).text
    before = _metric(scraped, "dicom_repo_metadata_instances_total")  # other tests' requests
    ct = next(f for f in web_files if f.path.name == "CT_small.dcm")
    series = f"{strict.dicomweb}/studies/{ct.study}/series/{ct.series}/metadata"
    assert requests.get(series, headers=auth, timeout=30).status_code == 200
    head = requests.head(series, headers=auth, timeout=30)
    assert head.status_code == 200 and not head.content
    assert requests.get(series, headers=auth, timeout=30).status_code == 200
    deadline = time.monotonic() + 10
    while True:  # an answer's metrics are recorded once it was sent
        metrics = requests.get(f"{strict.url}/metrics", headers=auth, timeout=30)
        text = metrics.text
        served = _metric(text, "dicom_repo_metadata_instances_total") - before
        if served >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert metrics.headers["Content-Type"].startswith("text/plain")
    route = "/dicom-web/studies/{study}/series/{series}/metadata"  # a template, not UIDs
    assert _metric(text, "dicom_repo_http_requests_total", route=route, status="200") >= 3
    assert _metric(text, "dicom_repo_http_request_duration_seconds_count", route=route) >= 3
    # one instance per GET, none for the HEAD (the first GET built the JSON and kept it)
    assert served == 2
    assert _metric(text, "dicom_repo_metadata_instances_total", json="built") >= 1
    for name in ("dicom_repo_db_pool_connections_in_use", "dicom_repo_db_slots_waiting",
                 "dicom_repo_db_up", "dicom_repo_change_feed_lag"):  # fmt: skip
        assert re.search(rf"^{name} ", text, re.MULTILINE), name
    assert _metric(text, "dicom_repo_db_up") == 1


def test_head_and_includefield_all_pages(strict: WebServer) -> None:
    auth = strict.headers()
    head = requests.head(f"{strict.dicomweb}/studies", headers=auth, timeout=30)
    assert head.status_code == 200 and not head.content
    bad = requests.head(f"{strict.dicomweb}/studies?offset=x", headers=auth, timeout=30)
    assert bad.status_code == 400
    page = requests.get(f"{strict.dicomweb}/instances?includefield=all", headers=auth, timeout=30)
    assert len(page.json()) == 2 and "offset=2" in page.headers["Warning"]


def _access_lines(server: WebServer) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in server.log.read_text().splitlines()
            if line.startswith("{")]  # fmt: skip


def test_access_log_lines_are_json_without_query_strings(strict: WebServer) -> None:
    auth = strict.headers()
    time.sleep(0.5)  # the lines of the module's earlier requests are written
    earlier = len(_access_lines(strict))
    requests.get(f"{strict.dicomweb}/studies?PatientID=secret", headers=auth, timeout=30)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        lines = _access_lines(strict)[earlier:]
        mine = [line for line in lines if line["route"] == "/dicom-web/studies"]
        if mine:
            break
        time.sleep(0.1)
    assert mine and mine[-1]["status"] == 200 and mine[-1]["method"] == "GET"
    assert mine[-1]["path"] == "/dicom-web/studies" and mine[-1]["bytes"] > 0
    assert "secret" not in strict.log.read_text()


def test_a_compacted_feed_position_is_410_gone(strict: WebServer, web_db: str) -> None:
    import repository

    with repository.connect(web_db) as store:
        newest = store.changes(0, 10_000)[-1].seq
        store.compact_changes(before_seq=newest)
    auth = strict.headers()
    for url, headers in ((f"{strict.url}/changes?since=0", {}),
                         (f"{strict.url}/changes/stream", {"Last-Event-ID": "0"})):  # fmt: skip
        gone = requests.get(url, headers={**auth, **headers}, timeout=30)
        assert gone.status_code == 410 and f"seq {newest}" in gone.json()["error"]
    assert "Traceback" not in strict.log.read_text()

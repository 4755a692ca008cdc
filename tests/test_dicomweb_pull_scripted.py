"""Pull failures that Orthanc cannot be made to produce (500s, malformed JSON, slow answers,
incomplete series results), from a small scripted HTTP server started in a thread."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from click.testing import CliRunner
from orthanc import (
    free_port,
)
from pull_fixtures import (
    PASSWORD,
)
from sqlalchemy import text

from repository import Store
from repository.cli import main
from repository.engine import make_engine
from repository.sources import (
    DicomWebSource,
    PullError,
    data_source_name,
    dicomweb,
    parse_header,
    redact_url,
)

pytest_plugins = ("pull_fixtures",)

# ----------------------------------------------------------------- a scripted DICOMweb server

STUDY = "1.2.826.0.1.3680043.8.498.100"
SERIES = [f"{STUDY}.1", f"{STUDY}.2", f"{STUDY}.3"]
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"


def _element(vr: str, *values: Any) -> dict[str, Any]:
    return {"vr": vr, "Value": list(values)} if values else {"vr": vr}


def summary_json(series: str, *, with_study: bool = True) -> dict[str, Any]:
    out = {
        "0020000E": _element("UI", series),
        "00080060": _element("CS", "CT"),
        "00200011": _element("IS", int(series.rsplit(".", 1)[1])),
    }
    if with_study:
        out["0020000D"] = _element("UI", STUDY)
    return out


def instance_json(series: str, number: int, bulk: str = "bulk/7fe00010") -> dict[str, Any]:
    return {
        "00080016": _element("UI", CT_IMAGE),
        "00080018": _element("UI", f"{series}.{number}"),
        "00080060": _element("CS", "CT"),
        "00100010": _element("PN", {"Alphabetic": "Scripted^Patient"}),
        "0020000D": _element("UI", STUDY),
        "0020000E": _element("UI", series),
        "00200013": _element("IS", number),
        "00280010": _element("US", 4),
        "00280011": _element("US", 4),
        "7FE00010": {"vr": "OW", "BulkDataURI": bulk},
    }


Route = Callable[[dict[str, list[str]]], tuple[int, Any]]


@dataclass
class Scripted:
    """A DICOMweb server answering from ``routes`` (path -> handler); records each request.

    ``delay`` holds the seconds to wait before answering the next request for a path (once).
    """

    routes: dict[str, Route]
    delay: dict[str, float] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/dicom-web"

    def reply(self, path: str, body: Any, status: int = 200) -> None:
        self.routes[path] = lambda query: (status, body)


@pytest.fixture
def scripted() -> Iterator[Scripted]:
    """A scripted server with one study of three series (2, 1 and 1 instances)."""
    server_state = Scripted(routes={})
    server_state.reply("/dicom-web/studies", [{"0020000D": _element("UI", STUDY)}])
    server_state.reply(f"/dicom-web/studies/{STUDY}/series", [summary_json(s) for s in SERIES])
    for index, series in enumerate(SERIES):
        count = 2 if index == 0 else 1
        server_state.reply(
            f"/dicom-web/studies/{STUDY}/series/{series}/metadata",
            [instance_json(series, n) for n in range(1, count + 1)],
        )

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            server_state.requests.append((parts.path, dict(self.headers.items())))
            time.sleep(server_state.delay.pop(parts.path, 0))
            route = server_state.routes.get(parts.path)
            status, body = route(parse_qs(parts.query)) if route else (404, {"error": "nope"})
            raw = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/dicom+json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(raw)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    server_state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server_state
    httpd.shutdown()
    httpd.server_close()


def metadata_path(series: str) -> str:
    return f"/dicom-web/studies/{STUDY}/series/{series}/metadata"


def committed_series(store: Store) -> dict[str, int]:
    study = store.get_study(STUDY)
    if study is None:
        return {}
    return {s.series_instance_uid: len(s.instances) for s in study.series}


def test_scripted_server_pull_works(store: Store, scripted: Scripted) -> None:
    report = DicomWebSource(scripted.url).pull(store)
    assert (report.studies, report.series, report.instances_added) == (1, 3, 4)
    inst = store.get_instance(STUDY, SERIES[0], f"{SERIES[0]}.1")
    assert inst is not None
    series_url = f"{scripted.url}/studies/{STUDY}/series/{SERIES[0]}"
    assert inst.metadata["PixelData"] == {"BulkDataURI": f"{series_url}/bulk/7fe00010"}


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"error": "boom"}, 500, "answered HTTP 500 Internal Server Error to the WADO-RS metadata"),
        (b'[{"0020000D": {"vr": "UI", "Val', 200, "sent malformed JSON for the WADO-RS metadata"),
        ("just a string", 200, "unexpected answer to the WADO-RS metadata"),
        ({"error": "gone"}, 404, "answered HTTP 404 Not Found to the WADO-RS metadata"),
        (b"[" * 5000 + b"]" * 5000, 200, "sent JSON nested too deeply for the WADO-RS metadata"),
        (
            [{**instance_json(SERIES[1], 1), "00081140": {"vr": "SQ", "Value": 5}}],
            200,
            "that cannot be stored: instance #0: DICOM JSON element 00081140: Value must be a list",
        ),
    ],
)
def test_a_failing_series_names_server_study_and_series_and_keeps_earlier_ones(
    store: Store, scripted: Scripted, body: Any, status: int, message: str
) -> None:
    scripted.reply(metadata_path(SERIES[1]), body, status)
    url = scripted.url.replace("http://", f"http://bob:{PASSWORD}@")
    source = DicomWebSource(url, headers={"Authorization": f"Bearer {PASSWORD}"})
    with pytest.raises(PullError) as raised:
        source.pull(store)
    text_ = str(raised.value)
    assert message in text_
    assert f"DICOMweb server {scripted.url} " in text_
    assert f"series {SERIES[1]} of study {STUDY}" in text_
    assert PASSWORD not in text_ and "bob" not in text_
    assert committed_series(store) == {SERIES[0]: 2}
    assert raised.value.report is not None and raised.value.report.instances_added == 2
    # sent with every request, as basic auth from the URL overridden by the explicit header
    assert all(h.get("Authorization") == f"Bearer {PASSWORD}" for _, h in scripted.requests)


def test_keep_going_records_the_failure_and_pulls_the_rest(
    store: Store, scripted: Scripted
) -> None:
    scripted.reply(metadata_path(SERIES[1]), {"error": "boom"}, 500)
    report = DicomWebSource(scripted.url).pull(store, keep_going=True)
    assert committed_series(store) == {SERIES[0]: 2, SERIES[2]: 1}
    assert report.series == 2 and report.studies == 0
    [failure] = report.failures
    assert "HTTP 500" in failure and SERIES[1] in failure


def test_cli_with_fail_fast_reports_what_was_committed_before_the_error(
    db_url: str, scripted: Scripted
) -> None:
    scripted.reply(metadata_path(SERIES[2]), {"error": "boom"}, 500)
    result = CliRunner().invoke(main, ["--db", db_url, "pull", scripted.url, "-q", "--fail-fast"])
    assert result.exit_code == 1
    assert "before the error: 0 studies, 2 series" in result.output
    assert (
        f"HTTP 500 Internal Server Error to the WADO-RS metadata request of series {SERIES[2]}"
        in (result.output)
    )


def test_cli_goes_on_past_a_failed_series_and_reports_it_with_the_servers_answer(
    db_url: str, scripted: Scripted
) -> None:
    scripted.reply(metadata_path(SERIES[1]), {"error": "boom"}, 500)
    result = CliRunner().invoke(main, ["--db", db_url, "pull", scripted.url, "-q"])
    assert result.exit_code == 1
    assert "failed: " in result.output and "HTTP 500" in result.output
    assert SERIES[1] in result.output and "1 failed" in result.output
    engine = make_engine(db_url)
    with engine.connect() as conn:
        pulled = {row[0] for row in conn.execute(text("SELECT series_instance_uid FROM series"))}
    engine.dispose()
    assert {SERIES[0], SERIES[2]} <= pulled


def test_series_results_without_study_uid_are_filed_under_the_study_asked_for(
    store: Store, scripted: Scripted
) -> None:
    scripted.reply(
        f"/dicom-web/studies/{STUDY}/series",
        [summary_json(s, with_study=False) for s in SERIES],
    )
    report = DicomWebSource(scripted.url).pull(store, studies=[STUDY])
    assert report.instances_added == 4
    assert committed_series(store) == {SERIES[0]: 2, SERIES[1]: 1, SERIES[2]: 1}


def test_results_contradicting_the_request_are_errors(store: Store, scripted: Scripted) -> None:
    wrong = summary_json(SERIES[0])
    wrong["0020000D"] = _element("UI", "1.2.3.999")
    scripted.reply(f"/dicom-web/studies/{STUDY}/series", [wrong])
    with pytest.raises(PullError, match=r"with StudyInstanceUID 1\.2\.3\.999"):
        DicomWebSource(scripted.url).pull(store)

    scripted.reply(f"/dicom-web/studies/{STUDY}/series", [summary_json(SERIES[0])])
    stray = instance_json(SERIES[1], 1)
    scripted.reply(metadata_path(SERIES[0]), [instance_json(SERIES[0], 1), stray])
    with pytest.raises(PullError, match=rf"instance #1 of series {SERIES[0]}.*{SERIES[1]}"):
        DicomWebSource(scripted.url).pull(store)

    scripted.reply(f"/dicom-web/studies/{STUDY}/series", [{"00080060": _element("CS", "CT")}])
    with pytest.raises(PullError, match=r"result #0 of the QIDO-RS series search .* no Series"):
        DicomWebSource(scripted.url).pull(store)
    assert committed_series(store) == {}


def test_instances_the_store_rejects_name_the_series(store: Store, scripted: Scripted) -> None:
    broken = instance_json(SERIES[0], 1)
    del broken["00080018"]  # no SOP Instance UID
    scripted.reply(metadata_path(SERIES[0]), [broken])
    with pytest.raises(PullError, match=rf"series {SERIES[0]} of study {STUDY} .*SOPInstanceUID"):
        DicomWebSource(scripted.url).pull(store)
    assert committed_series(store) == {}


def test_a_slow_server_times_out_with_a_clear_error(store: Store, scripted: Scripted) -> None:
    scripted.delay[metadata_path(SERIES[0])] = 3
    started = time.monotonic()
    with pytest.raises(PullError, match=r"did not answer the WADO-RS metadata .* within 0.5 s$"):
        DicomWebSource(scripted.url, timeout=0.5, attempts=1).pull(store)
    assert time.monotonic() - started < 2.5


def test_busy_and_slow_answers_are_tried_again(store: Store, scripted: Scripted) -> None:
    answers = iter([(503, {"error": "busy"}), (200, [instance_json(SERIES[0], 1)])])
    scripted.routes[metadata_path(SERIES[0])] = lambda query: next(answers)
    scripted.delay[metadata_path(SERIES[1])] = 0.6  # longer than the timeout, once
    report = DicomWebSource(scripted.url, timeout=0.3, attempts=2).pull(store)
    assert report.instances_added == 3 and not report.failures


def test_an_unreachable_server_is_a_clear_error(store: Store) -> None:
    url = f"http://127.0.0.1:{free_port()}/dicom-web"
    with pytest.raises(
        PullError, match=r"cannot reach DICOMweb server .* search \(2 attempts\)"
    ) as error:
        DicomWebSource(url, attempts=2).pull(store)
    assert "object at 0x" not in str(error.value)


def test_search_pages_through_results_and_stops_when_the_server_ignores_offset(
    store: Store, scripted: Scripted, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dicomweb, "PAGE_SIZE", 2)
    studies = [f"1.2.826.0.1.3680043.8.498.{n}" for n in range(1, 6)]

    def paged(query: dict[str, list[str]]) -> tuple[int, Any]:
        offset, limit = int(query["offset"][0]), int(query["limit"][0])
        return 200, [{"0020000D": _element("UI", s)} for s in studies[offset : offset + limit]]

    scripted.routes["/dicom-web/studies"] = paged
    assert DicomWebSource(scripted.url).search_studies() == studies

    scripted.reply("/dicom-web/studies", [{"0020000D": _element("UI", s)} for s in studies])
    assert DicomWebSource(scripted.url).search_studies() == studies  # offset ignored
    assert len(scripted.requests) == 4 + 2  # 2 + 2 + 1 + an empty page; 5 + the same 5


def test_bulk_data_uris_are_made_absolute_as_ohif_does(store: Store, scripted: Scripted) -> None:
    relative, rooted = "bulk/0042", "/elsewhere/0042"
    absolute = f"http://someone:{PASSWORD}@cdn.example/0042"
    first = instance_json(SERIES[0], 1, relative)
    lut = {"00281201": {"vr": "OW", "BulkDataURI": rooted}}  # RedPaletteColorLookupTableData
    first["00540016"] = {"vr": "SQ", "Value": [lut]}
    scripted.reply(metadata_path(SERIES[0]), [first, instance_json(SERIES[0], 2, absolute)])
    DicomWebSource(scripted.url).pull(store, studies=[STUDY])
    one = store.get_instance(STUDY, SERIES[0], f"{SERIES[0]}.1")
    two = store.get_instance(STUDY, SERIES[0], f"{SERIES[0]}.2")
    assert one is not None and two is not None
    series_url = f"{scripted.url}/studies/{STUDY}/series/{SERIES[0]}"
    assert one.metadata["PixelData"]["BulkDataURI"] == f"{series_url}/{relative}"
    origin = scripted.url.removesuffix("/dicom-web")
    sequence = one.metadata["RadiopharmaceuticalInformationSequence"]
    assert sequence[0]["RedPaletteColorLookupTableData"] == {"BulkDataURI": origin + rooted}
    assert two.metadata["PixelData"]["BulkDataURI"] == "http://cdn.example/0042"


# --------------------------------------------------------------------------------- helpers


def test_data_source_names_and_redaction() -> None:
    assert data_source_name("http://alice:pw@PACS.example:8042/dicom-web/") == (
        "pacs.example:8042/dicom-web"
    )
    assert data_source_name("https://pacs") == "pacs"
    long = data_source_name("https://pacs.example/" + "x" * 100)
    assert len(long) <= 64 and long.startswith("pacs.example/xxx")
    assert long != data_source_name("https://pacs.example/" + "x" * 101)
    assert redact_url("https://u:p@h:1/a?b=c") == "https://h:1/a?b=c"


def test_parse_header_never_echoes_the_value() -> None:
    assert parse_header("Authorization:  Bearer abc ") == ("Authorization", "Bearer abc")
    for bad in ("Bearer abc", "Authorization:", "Bad Name: abc", ": abc"):
        with pytest.raises(ValueError) as error:
            parse_header(bad)
        assert "abc" not in str(error.value)


def test_urls_are_checked() -> None:
    for bad in ("ftp://pacs/dicom-web", "pacs/dicom-web", "http://pacs/dicom-web?token=1"):
        with pytest.raises(ValueError, match="the QIDO-RS root URL") as error:
            DicomWebSource(bad)
        assert "token" not in str(error.value)
    source = DicomWebSource("http://a:b@pacs/dicom-web/", wado_root="http://pacs/wado/")
    assert (source.qido_root, source.wado_root) == ("http://pacs/dicom-web", "http://pacs/wado")
    with pytest.raises(ValueError, match="not both"):
        source.pull(None, studies=["1.2"], query={"A": "b"})  # type: ignore[arg-type]

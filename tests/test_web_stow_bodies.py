"""STOW-RS bodies beyond OHIF's: DICOM JSON with bulk data parts, and single application/dicom.

What a DICOM JSON STOW stores must read back (metadata, frames, the Part 10 file) exactly as the
same instance sent as a Part 10 file does.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import orjson
import pydicom
import pytest
import requests
from dicomweb_bodies import dicom_json_body, fresh, multipart, part10
from dicomweb_client.api import DICOMwebClient
from pydicom.uid import generate_uid
from web_server import WebServer, start

pytest_plugins = ("web_fixtures",)
DICOM_JSON = "application/dicom+json"
ANY_FRAMES = {"Accept": 'multipart/related; type="application/octet-stream"; transfer-syntax=*'}


def _url(server: WebServer, ds: pydicom.Dataset, tail: str = "") -> str:
    return (f"{server.dicomweb}/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
            f"/instances/{ds.SOPInstanceUID}{tail}")  # fmt: skip


def _post(url: str, body: bytes, content_type: str) -> requests.Response:
    return requests.post(url, data=body, headers={"Content-Type": content_type}, timeout=60)


def _frames(server: WebServer, ds: pydicom.Dataset) -> bytes:
    count = int(ds.get("NumberOfFrames", 1) or 1)
    numbers = ",".join(str(n) for n in range(1, count + 1))
    answer = requests.get(_url(server, ds, f"/frames/{numbers}"), headers=ANY_FRAMES, timeout=60)
    assert answer.status_code == 200, answer.text
    boundary = answer.headers["Content-Type"].split("boundary=")[1].strip('"').encode()
    parts = answer.content.split(b"--" + boundary)[1:-1]
    return b"".join(part.split(b"\r\n\r\n", 1)[1][: -len(b"\r\n")] for part in parts)


def _metadata_as(server: WebServer, ds: pydicom.Dataset, like: pydicom.Dataset) -> Any:
    """The instance's WADO-RS metadata, with its UIDs written as ``like``'s; of the file meta
    information (which a DICOM JSON client does not send) only the transfer syntax."""
    answer = requests.get(_url(server, ds, "/metadata"), timeout=60)
    assert answer.status_code == 200, answer.text
    text = answer.content
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
        text = text.replace(str(ds[keyword].value).encode(), str(like[keyword].value).encode())
    (meta,) = orjson.loads(text)
    return {t: v for t, v in meta.items() if not t.startswith("0002") or t == "00020010"}


@pytest.mark.parametrize("name", ["CT_small.dcm", "emri_small.dcm"])
def test_dicom_json_and_bulk_data_read_back_like_the_part10_file(
    server: WebServer, client: DICOMwebClient, name: str
) -> None:
    as_json = fresh(name)
    as_file = fresh(name)
    body, content_type = dicom_json_body([as_json])
    answer = _post(f"{server.dicomweb}/studies/{as_json.StudyInstanceUID}", body, content_type)
    assert answer.status_code == 200, answer.text
    (stored,) = answer.json()["00081199"]["Value"]
    assert stored["00081155"]["Value"] == [as_json.SOPInstanceUID]
    client.store_instances([as_file])
    assert _metadata_as(server, as_json, as_file) == _metadata_as(server, as_file, as_file)
    assert _frames(server, as_json) == _frames(server, as_file) == as_json.PixelData
    back = requests.get(_url(server, as_json), headers={"Accept": "application/dicom"}, timeout=60)
    copy = pydicom.dcmread(io.BytesIO(back.content))
    assert (copy.pixel_array == as_json.pixel_array).all()
    assert [e for e in copy if e.tag != 0x7FE00010] == [e for e in as_json if e.tag != 0x7FE00010]


@pytest.mark.parametrize("name", ["MR_small_jp2klossless.dcm", "emri_small_jpeg_2k_lossless.dcm"])
def test_dicom_json_with_jpeg2000_frames_keeps_them_compressed(
    server: WebServer, name: str
) -> None:
    ds = fresh(name)
    syntax = ds.file_meta.TransferSyntaxUID
    body, content_type = dicom_json_body([ds], f"image/jp2; transfer-syntax={syntax}")
    answer = _post(f"{server.dicomweb}/studies", body, content_type)
    assert answer.status_code == 200, answer.text
    count = int(ds.get("NumberOfFrames", 1) or 1)
    frames = pydicom.encaps.generate_frames(ds.PixelData, number_of_frames=count)
    assert _frames(server, ds) == b"".join(frames)
    meta = requests.get(_url(server, ds, "/metadata"), timeout=60).json()[0]
    assert meta["00020010"]["Value"] == [syntax]
    back = requests.get(_url(server, ds), headers={"Accept": "application/dicom"}, timeout=60)
    assert (pydicom.dcmread(io.BytesIO(back.content)).pixel_array == ds.pixel_array).all()


def test_dicom_json_refusals_name_the_instance_and_the_reason(server: WebServer) -> None:
    kept = fresh("CT_small.dcm")
    unnamed, elsewhere = fresh("CT_small.dcm", kept.StudyInstanceUID), fresh("MR_small.dcm")
    short, moved = (
        fresh("MR_small.dcm", kept.StudyInstanceUID),
        fresh("CT_small.dcm", kept.StudyInstanceUID),
    )
    short.PixelData = short.PixelData[:-2]
    moved.SOPInstanceUID = kept.SOPInstanceUID  # in another series: a conflict
    body, content_type = dicom_json_body([kept, unnamed, elsewhere, short, moved])
    missing = f"Location: http://client.test/{unnamed.SOPInstanceUID}/"
    body = body.replace(missing.encode(), b"Location: http://elsewhere/")
    answer = _post(f"{server.dicomweb}/studies/{kept.StudyInstanceUID}", body, content_type)
    assert answer.status_code == 202, answer.text
    failed = [(i["00081155"]["Value"][0], i["00081197"]["Value"][0])
              for i in answer.json()["00081198"]["Value"]]  # fmt: skip
    assert sorted(failed) == sorted(
        [
            (unnamed.SOPInstanceUID, 0xC000),
            (short.SOPInstanceUID, 0xC000),
            (elsewhere.SOPInstanceUID, 0xA900),
            (kept.SOPInstanceUID, 0x0111),
        ]
    )
    (stored,) = answer.json()["00081199"]["Value"]
    assert stored["00081155"]["Value"] == [kept.SOPInstanceUID]
    assert requests.get(_url(server, unnamed, "/metadata"), timeout=60).status_code == 404
    assert requests.get(_url(server, kept, "/metadata"), timeout=60).status_code == 200
    again = _post(f"{server.dicomweb}/studies", *dicom_json_body([kept]))
    assert again.status_code == 200  # the same instance again is no conflict


@pytest.mark.parametrize(
    ("parts", "status", "says"),
    [
        ([({"Content-Type": "application/dicom"}, b"x")], 400, "first part"),
        ([({"Content-Type": DICOM_JSON}, b"[{")], 400, "not JSON"),
        ([({"Content-Type": DICOM_JSON}, b"{}")], 409, "00081198"),
        ([({"Content-Type": DICOM_JSON}, b"[]")], 400, "non-empty array"),
    ],
)
def test_bad_dicom_json_bodies_answer_a_clear_error(
    server: WebServer, parts: list[tuple[dict[str, str], bytes]], status: int, says: str
) -> None:
    answer = _post(f"{server.dicomweb}/studies", *multipart(parts, DICOM_JSON))
    assert answer.status_code == status
    assert says in answer.text


def test_a_refusal_is_logged_in_one_bounded_line_without_a_traceback(server: WebServer) -> None:
    sop = generate_uid()
    item = {"00080016": {"vr": "UI", "Value": ["1.2.840.10008.5.1.4.1.1.7"]},
            "00080018": {"vr": "UI", "Value": [sop]},
            "00100020": {"vr": "LO", "Value": [1.5]},  # pydicom's error carries its traceback
            "00091010": {"vr": "OB", "InlineBinary": "QUJD" * 20_000}}  # fmt: skip
    parts = [({"Content-Type": DICOM_JSON}, orjson.dumps([item]))]
    answer = _post(f"{server.dicomweb}/studies", *multipart(parts, DICOM_JSON))
    assert answer.status_code == 409, answer.text
    lines = [line for line in server.log.read_text().splitlines() if sop in line]
    assert len(lines) == 1 and "STOW-RS refused" in lines[0] and len(lines[0]) < 500, lines
    assert "Traceback" not in server.log.read_text()


def test_single_part_application_dicom(server: WebServer) -> None:
    ds = fresh("CT_small.dcm")
    answer = _post(f"{server.dicomweb}/studies", part10(ds), "application/dicom")
    assert answer.status_code == 200, answer.text
    assert answer.json()["00081199"]["Value"][0]["00081155"]["Value"] == [ds.SOPInstanceUID]
    assert _frames(server, ds) == ds.PixelData
    other = _post(f"{server.dicomweb}/studies/{generate_uid()}", part10(fresh("CT_small.dcm")),
                  "application/dicom")  # fmt: skip
    assert other.status_code == 409
    assert other.json()["00081198"]["Value"][0]["00081197"]["Value"] == [0xA900]
    empty = _post(f"{server.dicomweb}/studies", b"", "application/dicom")
    assert empty.status_code == 400 and "empty" in empty.json()["error"]
    text = _post(f"{server.dicomweb}/studies", b"hello", "text/plain")
    assert text.status_code == 415


def test_every_body_obeys_read_only_and_token(web_db: str, tmp_path: Path) -> None:
    ds = fresh("CT_small.dcm")
    bodies = [(part10(ds), "application/dicom"), dicom_json_body([ds])]
    guarded = start(web_db, tmp_path, workers=1, token="t0ken",
                    args=["--read-only", "--storage", str(tmp_path / "storage")])  # fmt: skip
    try:
        for body, content_type in bodies:
            assert _post(f"{guarded.dicomweb}/studies", body, content_type).status_code == 401
            refused = requests.post(
                f"{guarded.dicomweb}/studies",
                data=body,
                timeout=60,
                headers={"Content-Type": content_type, **guarded.headers()},
            )
            assert refused.status_code == 403 and "read-only" in refused.json()["error"]
    finally:
        guarded.stop()

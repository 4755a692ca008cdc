"""QIDO-RS and WADO-RS of ``dicom-repo serve`` (2 workers), through dicomweb-client and HTTP.

Expected answers are computed from the files themselves, read with pydicom.
"""

from __future__ import annotations

from collections import Counter

import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from orthanc import UploadedFile
from pydicom.encaps import generate_frames
from web_server import WebServer, read

pytest_plugins = ("web_fixtures",)
OHIF_FRAMES = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'


def _uids(results: list[dict[str, object]], tag: str) -> set[str]:
    return {r[tag]["Value"][0] for r in results}  # type: ignore[index]


def _value(result: dict[str, object], tag: str) -> object:
    element = result.get(tag)
    return element["Value"][0] if isinstance(element, dict) and "Value" in element else None


def test_searches_every_level_and_counts_what_was_ingested(
    client: DICOMwebClient, web_files: list[UploadedFile]
) -> None:
    studies = client.search_for_studies()
    assert _uids(studies, "0020000D") == {f.study for f in web_files}
    per_study = Counter(f.study for f in web_files)
    for study in studies:
        uid = _value(study, "0020000D")
        assert _value(study, "00201208") == per_study[uid]
        assert all("Value" in e or "BulkDataURI" in e for e in study.values()), study
    study = max(per_study, key=lambda s: per_study[s])
    series = client.search_for_series(study_instance_uid=study)
    assert _uids(series, "0020000E") == {f.series for f in web_files if f.study == study}
    one = _value(series[0], "0020000E")
    instances = client.search_for_instances(study_instance_uid=study, series_instance_uid=one)
    expected = {f.sop for f in web_files if f.series == one}
    assert _uids(instances, "00080018") == expected
    assert _value(series[0], "00201209") == len(expected)
    everywhere = client.search_for_instances(search_filters={"SeriesInstanceUID": one})
    assert _uids(everywhere, "00080018") == expected
    assert all(_value(i, "0020000D") == study for i in everywhere)  # study attributes too
    all_series = client.search_for_series(search_filters={"StudyInstanceUID": study})
    assert _uids(all_series, "0020000E") == _uids(series, "0020000E")


def test_study_search_as_ohif_sends_it(server: WebServer, web_files: list[UploadedFile]) -> None:
    files = {f.study: read(f.path) for f in web_files}
    peter = {s for s, ds in files.items() if str(ds.get("PatientName", "")) == "Doe^Peter"}
    in_2001 = {s for s in peter if files[s].get("StudyDate", "").startswith("2001")}
    mr = {f.study for f in web_files if f.modality == "MR"}
    url = (f"{server.dicomweb}/studies?limit=101&offset=0&fuzzymatching=false"
           "&includefield=00081030%2C00080060%2C00100020")  # fmt: skip
    answer = requests.get(url + "&PatientName=*Peter*", timeout=30)
    assert answer.status_code == 200 and _uids(answer.json(), "0020000D") == peter
    assert all("00100020" in r for r in answer.json())
    ranged = requests.get(url + "&PatientName=*eter&StudyDate=20010101-20011231", timeout=30)
    assert _uids(ranged.json(), "0020000D") == in_2001 != set()
    patient_id = str(files[next(iter(peter))].PatientID)
    by_tag = requests.get(url + f"&00100020=*{patient_id[1:-1]}*", timeout=30).json()
    assert peter <= _uids(by_tag, "0020000D")
    modality = requests.get(url + "&ModalitiesInStudy=MR", timeout=30).json()
    assert _uids(modality, "0020000D") == mr
    assert all("MR" in r["00080061"]["Value"] for r in modality)
    none = requests.get(url + "&PatientName=Nobody*", timeout=30)
    assert none.status_code == 200 and none.json() == []


def test_person_names_fuzzy_and_case(client: DICOMwebClient, web_files: list[UploadedFile]) -> None:
    names = {f.study: str(read(f.path).get("PatientName", "")) for f in web_files}
    archibald = {s for s, n in names.items() if n == "Doe^Archibald"}
    fuzzy = client.search_for_studies(search_filters={"PatientName": "archi"}, fuzzymatching=True)
    assert _uids(fuzzy, "0020000D") == archibald
    exact = client.search_for_studies(search_filters={"PatientName": "archi"})
    assert exact == []
    same = client.search_for_studies(search_filters={"PatientName": "doe^archibald"})
    assert _uids(same, "0020000D") == archibald


def test_limit_offset_and_warning(server: WebServer, web_files: list[UploadedFile]) -> None:
    seen: list[str] = []
    for offset in range(0, 100, 7):
        page = requests.get(f"{server.dicomweb}/studies?limit=7&offset={offset}", timeout=30)
        seen += [r["0020000D"]["Value"][0] for r in page.json()]
        more = len(seen) < len({f.study for f in web_files})
        assert ("Warning" in page.headers) == more, (offset, page.headers)
    assert sorted(seen) == sorted({f.study for f in web_files})


def test_bad_queries_are_400_with_a_message(server: WebServer) -> None:
    for query in ("NoSuchKeyword=1", "StudyDate=2001-13-99", "limit=-1", "fuzzymatching=yes",
                  "StudyInstanceUID=1.2.abc", "includefield=NotAKeyword"):  # fmt: skip
        answer = requests.get(f"{server.dicomweb}/studies?{query}", timeout=30)
        assert answer.status_code == 400, query
        assert answer.json()["error"] and "Traceback" not in answer.text
    unknown = requests.get(f"{server.dicomweb}/studies/1.2.3.4/series/1.2.3/metadata", timeout=30)
    assert unknown.status_code == 404 and "1.2.3" in unknown.json()["error"]
    json_only = requests.get(f"{server.dicomweb}/studies", headers={"Accept": "image/png"},
                             timeout=30)  # fmt: skip
    assert json_only.status_code == 406


def test_series_metadata_is_the_files_with_this_servers_bulk_uris(
    server: WebServer, client: DICOMwebClient, web_files: list[UploadedFile]
) -> None:
    by_series: dict[tuple[str, str], list[UploadedFile]] = {}
    for f in web_files:
        by_series.setdefault((f.study, f.series), []).append(f)
    for (study, series), files in by_series.items():
        metadata = client.retrieve_series_metadata(study, series)
        assert {_value(m, "00080018") for m in metadata} == {f.sop for f in files}
        for instance in metadata:
            f = next(f for f in files if f.sop == _value(instance, "00080018"))
            assert _value(instance, "00280010") == f.rows
            assert _value(instance, "00200013") == f.instance_number
    ct = next(f for f in web_files if f.path.name == "CT_small.dcm")
    # dicomweb-client sends "Host: 127.0.0.1" without the port; a browser sends the port, and
    # BulkDataURIs are built from the Host the client sent.
    url = f"{server.dicomweb}/studies/{ct.study}/series/{ct.series}/instances/{ct.sop}/metadata"
    (instance,) = requests.get(url, timeout=30).json()
    uris = [e["BulkDataURI"] for e in instance.values() if "BulkDataURI" in e]
    assert uris and all(u.startswith(server.dicomweb + "/studies/") for u in uris)
    pixels = client.retrieve_bulkdata(instance["7FE00010"]["BulkDataURI"])
    assert pixels == [read(ct.path, pixels=True).PixelData]


def _parts(answer: requests.Response) -> list[tuple[str, bytes]]:
    """The raw part headers (as sent, unnormalized) and bodies of a multipart answer."""
    boundary = answer.headers["Content-Type"].split("boundary=")[1].encode()
    chunks = answer.content.split(b"--" + boundary)
    assert chunks[0] == b"" and chunks[-1] == b"--\r\n"
    parts = []
    for chunk in chunks[1:-1]:
        head, _, body = chunk[2:].partition(b"\r\n\r\n")
        assert head.startswith(b"Content-Type: ") and body.endswith(b"\r\n")
        parts.append((head.decode()[len("Content-Type: ") :], body[:-2]))
    return parts


def _frames_url(server: WebServer, f: UploadedFile, frames: str) -> str:
    return (f"{server.dicomweb}/studies/{f.study}/series/{f.series}/instances/{f.sop}"
            f"/frames/{frames}")  # fmt: skip


def test_frames_as_stored_and_decoded(
    server: WebServer, client: DICOMwebClient, web_files: list[UploadedFile]
) -> None:
    jpeg = next(f for f in web_files if f.path.name == "examples_ybr_color.dcm")
    ds = read(jpeg.path, pixels=True)
    expected = list(generate_frames(ds.PixelData, number_of_frames=30))
    answer = requests.get(_frames_url(server, jpeg, "1,30"), headers={"Accept": OHIF_FRAMES},
                          timeout=30)  # fmt: skip
    assert answer.status_code == 200
    parts = _parts(answer)
    syntax = str(ds.file_meta.TransferSyntaxUID)
    assert [p[0] for p in parts] == [f"application/octet-stream; transfer-syntax={syntax}"] * 2
    assert [p[1] for p in parts] == [expected[0], expected[29]]
    native = next(f for f in web_files if f.path.name == "rtdose.dcm")
    pixel_data = read(native.path, pixels=True).PixelData
    size = len(pixel_data) // 15
    frames = client.retrieve_instance_frames(native.study, native.series, native.sop, [2, 15])
    assert frames == [pixel_data[size : 2 * size], pixel_data[14 * size :]]
    lossless = next(f for f in web_files if f.path.name == "SC_rgb_jpeg_gdcm.dcm")
    explicit = 'multipart/related; type="application/octet-stream"'
    refused = requests.get(_frames_url(server, lossless, "1"), headers={"Accept": explicit},
                           timeout=30)  # fmt: skip
    assert refused.status_code == 406 and "transfer-syntax=*" in refused.json()["error"]
    missing = requests.get(_frames_url(server, native, "16"), headers={"Accept": OHIF_FRAMES},
                           timeout=30)  # fmt: skip
    assert missing.status_code == 404


def test_retrieve_instance_is_the_stored_file(
    server: WebServer, client: DICOMwebClient, web_files: list[UploadedFile]
) -> None:
    mr = next(f for f in web_files if f.path.name == "MR_small.dcm")
    url = f"{server.dicomweb}/studies/{mr.study}/series/{mr.series}/instances/{mr.sop}"
    answer = requests.get(url, headers={"Accept": "application/dicom"}, timeout=30)
    assert answer.status_code == 200 and answer.content == mr.path.read_bytes()
    ds = client.retrieve_instance(mr.study, mr.series, mr.sop)
    assert ds.SOPInstanceUID == mr.sop and ds.PixelData == read(mr.path, pixels=True).PixelData


@pytest.mark.parametrize("path", ["studies/1.2.3.x/metadata", "studies/1.2/series/1.2-3/metadata",
                                  "studies/1.2/series/1.2/instances/1..2/frames/1"])  # fmt: skip
def test_malformed_uids_are_refused_before_any_lookup(server: WebServer, path: str) -> None:
    answer = requests.get(f"{server.dicomweb}/{path}", timeout=30)
    assert answer.status_code == 400 and "UID" in answer.json()["error"]


def test_pixel_data_bulk_values_are_the_files_native_and_encapsulated(
    server: WebServer, client: DICOMwebClient, web_files: list[UploadedFile]
) -> None:
    for name in ("examples_ybr_color.dcm", "rtdose.dcm", "SC_rgb_jpeg_gdcm.dcm", "MR_small.dcm"):
        f = next(f for f in web_files if f.path.name == name)
        expected = read(f.path, pixels=True).PixelData
        url = (f"{server.dicomweb}/studies/{f.study}/series/{f.series}/instances/{f.sop}"
               f"/bulkdata/7FE00010")  # fmt: skip
        single = requests.get(url, headers={"Accept": "application/octet-stream",
                                            "Accept-Encoding": "identity"}, timeout=30)  # fmt: skip
        assert single.status_code == 200 and single.content == expected, name
        assert single.headers["Content-Length"] == str(len(expected))
        assert client.retrieve_bulkdata(url) == [expected], name

"""WADO-RS rendered frames and thumbnails, checked against pydicom's own display pipeline.

Each rendered frame must correlate (r > 0.99) with ``apply_voi_lut(apply_modality_lut(frame))``
as pydicom computes it for the same frame (with the requested window set on the dataset).
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pydicom
import pytest
import requests
from dicomweb_bodies import fresh
from dicomweb_client.api import DICOMwebClient
from PIL import Image
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut
from pydicom.uid import generate_uid
from web_server import WebServer

pytest_plugins = ("web_fixtures",)


def _url(server: WebServer, ds: pydicom.Dataset, tail: str = "") -> str:
    return (f"{server.dicomweb}/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
            f"/instances/{ds.SOPInstanceUID}{tail}")  # fmt: skip


def _image(data: bytes) -> np.ndarray[Any, Any]:
    return np.asarray(Image.open(io.BytesIO(data)), dtype=np.float64)


def reference(ds: pydicom.Dataset, frame: int, window: str | None = None) -> np.ndarray[Any, Any]:
    """pydicom's modality LUT then VOI LUT of ``frame`` (from 1), with ``window`` if given."""
    arr = ds.pixel_array
    if int(ds.get("NumberOfFrames", 1) or 1) > 1:
        arr = arr[frame - 1]
    ds = pydicom.Dataset(ds)
    if window:
        center, width, *function = window.split(",")
        ds.WindowCenter, ds.WindowWidth = float(center), float(width)
        ds.VOILUTFunction = (function or ["linear"])[0].upper().replace("-", "_")
    return np.asarray(apply_voi_lut(apply_modality_lut(arr, ds), ds), dtype=np.float64)


def correlation(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> float:
    """Pearson's r of two equally shaped images."""
    assert a.shape == b.shape
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def _window(ds: pydicom.Dataset, function: str) -> str:
    """A window around the middle of the frame's modality values (most pixels inside)."""
    values = apply_modality_lut(ds.pixel_array, ds)
    low, high = np.percentile(values, [20, 80])
    return f"{(low + high) / 2:.1f},{max(high - low, 2):.1f},{function}"


@pytest.mark.parametrize(
    ("name", "frame", "function", "media_type"),
    [
        ("CT_small.dcm", 1, None, "image/jpeg"),
        ("CT_small.dcm", 1, "linear", "image/png"),
        ("CT_small.dcm", 1, "sigmoid", "image/jpeg"),
        ("MR_small.dcm", 1, None, "image/png"),
        ("MR_small.dcm", 1, "linear-exact", "image/jpeg"),
        ("emri_small.dcm", 7, None, "image/jpeg"),
        ("693_J2KR.dcm", 1, None, "image/jpeg"),
        ("MR_small_jp2klossless.dcm", 1, None, "image/png"),
        ("US1_UNCR.dcm", 1, None, "image/jpeg"),
        ("US1_J2KR.dcm", 1, None, "image/png"),
    ],
)
def test_rendered_frame_correlates_with_pydicoms_luts(
    server: WebServer, client: DICOMwebClient, name: str, frame: int, function: str | None,
    media_type: str,
) -> None:  # fmt: skip
    ds = fresh(name)
    client.store_instances([ds])
    window = _window(ds, function) if function else None
    query = {"window": window} if window else {}
    answer = requests.get(_url(server, ds, f"/frames/{frame}/rendered"), params=query,
                          headers={"Accept": media_type}, timeout=60)  # fmt: skip
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"] == media_type
    assert correlation(_image(answer.content), reference(ds, frame, window)) > 0.99


@pytest.mark.parametrize(
    ("name", "sequence"),
    [("mlut_18.dcm", "ModalityLUTSequence"), ("vlut_04.dcm", "VOILUTSequence")],
)
def test_modality_and_voi_lut_sequences_are_applied(
    server: WebServer, client: DICOMwebClient, name: str, sequence: str
) -> None:
    """The LUT is reversed, so that a frame rendered without it would correlate at -1."""
    ds = fresh(name)
    lut = ds[sequence][0]
    lut.LUTData = list(reversed(lut.LUTData))
    client.store_instances([ds])
    answer = requests.get(_url(server, ds, "/rendered"), params={"accept": "image/png"},
                          timeout=60)  # fmt: skip
    assert answer.status_code == 200, answer.text
    assert correlation(_image(answer.content), reference(ds, 1)) > 0.99


def test_palette_color_and_monochrome1_are_shown_as_meant(
    server: WebServer, client: DICOMwebClient
) -> None:
    palette, inverted = fresh("OBXXXX1A.dcm"), fresh("MR_small.dcm")
    inverted.PhotometricInterpretation = "MONOCHROME1"
    client.store_instances([palette, inverted])
    colors = requests.get(_url(server, palette, "/rendered"), params={"accept": "image/png"},
                          timeout=60)  # fmt: skip
    expected = np.asarray(apply_color_lut(palette.pixel_array, palette), dtype=np.float64)
    assert correlation(_image(colors.content), expected / 257) > 0.99
    dark = requests.get(_url(server, inverted, "/rendered"), params={"accept": "image/png"},
                        timeout=60)  # fmt: skip
    assert correlation(_image(dark.content), reference(inverted, 1)) < -0.99


def test_dicomweb_client_retrieves_rendered_instances_and_frames(
    client: DICOMwebClient,
) -> None:
    ds = fresh("emri_small.dcm")
    client.store_instances([ds])
    uids = (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
    png = client.retrieve_instance_rendered(*uids, media_types=("image/png",))
    assert png.startswith(b"\x89PNG")
    assert correlation(_image(png), reference(ds, 1)) > 0.99
    window = _window(ds, "linear")
    jpeg = client.retrieve_instance_frames_rendered(
        *uids, frame_numbers=[4], media_types=("image/jpeg",),
        params={"window": window, "quality": 95},
    )  # fmt: skip
    assert jpeg.startswith(b"\xff\xd8")
    assert correlation(_image(jpeg), reference(ds, 4, window)) > 0.99
    plain = client.retrieve_instance_rendered(*uids)  # no Accept header: JPEG
    assert plain.startswith(b"\xff\xd8")


def _shrunk(data: bytes) -> np.ndarray[Any, Any]:
    """A 128 x 128 thumbnail of a 64 x 64 frame, back to 64 x 64."""
    image = Image.open(io.BytesIO(data)).resize((64, 64), Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.float64)


def test_thumbnails_show_the_representative_frame(
    server: WebServer, client: DICOMwebClient
) -> None:
    study = generate_uid()
    ct = [fresh("CT_small.dcm", study) for _ in range(3)]
    for number, ds in enumerate(ct, start=1):
        ds.SeriesInstanceUID, ds.SeriesNumber, ds.InstanceNumber = (
            ct[0].SeriesInstanceUID,
            1,
            number,
        )
        if number != 2:  # only the middle instance keeps its picture
            ds.PixelData = np.ascontiguousarray(np.flipud(ds.pixel_array)).tobytes()
    mr = fresh("emri_small.dcm", study)
    mr.SeriesNumber = 2
    client.store_instances([*ct, mr])
    root = f"{server.dicomweb}/studies/{study}"
    of_study = requests.get(f"{root}/thumbnail", timeout=60)
    assert of_study.status_code == 200 and of_study.headers["Content-Type"] == "image/jpeg"
    assert correlation(_image(of_study.content), reference(ct[1], 1)) > 0.99
    middle = requests.get(f"{root}/series/{mr.SeriesInstanceUID}/thumbnail", timeout=60)
    assert middle.status_code == 200 and Image.open(io.BytesIO(middle.content)).size == (128, 128)
    assert correlation(_shrunk(middle.content), reference(mr, 5)) > 0.98
    of_instance = requests.get(_url(server, ct[0], "/thumbnail"), timeout=60)
    assert correlation(_image(of_instance.content), reference(ct[0], 1)) > 0.99  # its own
    small = requests.get(_url(server, ct[0], "/thumbnail"), params={"viewport": "32,16"},
                         headers={"Accept": "image/png"}, timeout=60)  # fmt: skip
    assert small.headers["Content-Type"] == "image/png"
    assert Image.open(io.BytesIO(small.content)).size == (16, 16)
    frame = requests.get(_url(server, mr, "/frames/9/thumbnail"), timeout=60)
    assert frame.status_code == 200
    assert correlation(_shrunk(frame.content), reference(mr, 9)) > 0.98
    none = requests.get(f"{server.dicomweb}/studies/{generate_uid()}/thumbnail", timeout=60)
    assert none.status_code == 404 and "no instance with pixel data" in none.json()["error"]


def test_viewport_cuts_flips_and_scales(server: WebServer, client: DICOMwebClient) -> None:
    ds = fresh("US1_UNCR.dcm")
    client.store_instances([ds])
    url = _url(server, ds, "/rendered")
    whole = _image(requests.get(url, params={"accept": "image/png"}, timeout=60).content)
    cut = requests.get(url, params={"viewport": "100,100,10,70,100,-50", "accept": "image/png"},
                       timeout=60)  # fmt: skip
    assert cut.status_code == 200, cut.text
    assert np.array_equal(_image(cut.content), whole[20:70, 10:110][::-1])  # rows flipped
    fitted = requests.get(url, params={"viewport": "64,64"}, timeout=60)
    assert Image.open(io.BytesIO(fitted.content)).size == (64, 48)


@pytest.mark.parametrize(
    ("tail", "params", "accept", "status", "says"),
    [
        ("/rendered", {}, "image/gif", 406, "image/jpeg or image/png"),
        ("/rendered", {"window": "40"}, "image/jpeg", 400, "window"),
        ("/rendered", {"window": "40,0"}, "image/jpeg", 400, "too small"),
        ("/rendered", {"window": "40,400,cubic"}, "image/jpeg", 400, "linear-exact"),
        ("/rendered", {"viewport": "0,10"}, "image/jpeg", 400, "viewport"),
        ("/rendered", {"viewport": "inf,10"}, "image/jpeg", 400, "numbers"),
        ("/rendered", {"window": "nan,10"}, "image/jpeg", 400, "numbers"),
        ("/rendered", {"viewport": "9,9,9000,0,5,5"}, "image/jpeg", 400, "outside"),
        ("/rendered", {"quality": "0"}, "image/jpeg", 400, "quality"),
        ("/frames/2/rendered", {}, "image/jpeg", 404, "frame 2 does not exist"),
        ("/frames/1,1/rendered", {}, "image/jpeg", 400, "one frame"),
        ("/frames/x/rendered", {}, "image/jpeg", 400, "frame list"),
    ],
)
def test_bad_rendered_requests_answer_clear_errors(
    server: WebServer, client: DICOMwebClient, tail: str, params: dict[str, str], accept: str,
    status: int, says: str,
) -> None:  # fmt: skip
    ds = fresh("MR_small.dcm")
    client.store_instances([ds])
    answer = requests.get(_url(server, ds, tail), params=params, headers={"Accept": accept},
                          timeout=60)  # fmt: skip
    assert answer.status_code == status
    assert says in answer.json()["error"]
    assert "Traceback" not in answer.text


def test_what_cannot_be_rendered_answers_406(server: WebServer, client: DICOMwebClient) -> None:
    ds = fresh("US1_UNCR.dcm")
    ds.PhotometricInterpretation = "HSV"  # retired: nothing displays it
    client.store_instances([ds])
    answer = requests.get(_url(server, ds, "/rendered"), timeout=60)
    assert answer.status_code == 406
    assert "'HSV' is not rendered" in answer.json()["error"]
    report = fresh("test-SR.dcm")
    client.store_instances([report])
    words = requests.get(_url(server, report, "/rendered"), timeout=60)
    assert words.status_code == 406 and "no pixel data" in words.json()["error"]


def test_a_frame_without_a_decoder_here_answers_406_naming_the_transfer_syntax(
    server: WebServer, client: DICOMwebClient
) -> None:
    from pydicom.pixels import get_decoder

    ds = fresh("SC_rgb_jls_lossy_line.dcm")  # JPEG-LS: no decoder in the test extra
    syntax = ds.file_meta.TransferSyntaxUID
    client.store_instances([ds])
    answer = requests.get(_url(server, ds, "/frames/1/rendered"), timeout=60)
    if get_decoder(syntax).is_available:  # a decoder plugin was installed beside the extra
        assert answer.status_code == 200
        return
    assert answer.status_code == 406, answer.text
    error = answer.json()["error"]
    assert ds.SOPInstanceUID in error  # the file it could not render
    assert error.endswith(f"no pixel data decoder for {syntax.name} ({syntax}) here")
    assert requests.get(_url(server, ds, "/thumbnail"), timeout=60).status_code == 406


def test_a_frame_declaring_a_huge_decoded_size_is_refused_before_decoding(
    server: WebServer, client: DICOMwebClient
) -> None:
    from pydicom.encaps import encapsulate
    from pydicom.uid import RLELossless

    ds = fresh("MR_small_RLE.dcm")  # a few bytes of RLE that claim 65535 x 65535 x 16 bits
    ds.Rows = ds.Columns = 65535
    ds.PixelData = encapsulate([b"\x01" + b"\x00" * 63 + b"\x00\x00"])
    ds["PixelData"].VR = "OB"
    assert ds.file_meta.TransferSyntaxUID == RLELossless
    client.store_instances([ds])
    explicit = {"Accept": 'multipart/related; type="application/octet-stream"'}
    for tail, headers in (("/rendered", {}), ("/frames/1/rendered", {}), ("/thumbnail", {}),
                          ("/frames/1", explicit)):  # fmt: skip
        answer = requests.get(_url(server, ds, tail), headers=headers, timeout=60)
        assert answer.status_code == 422, (tail, answer.text[:300])
        assert "bytes a frame is decoded to here" in answer.json()["error"]

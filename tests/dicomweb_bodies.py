"""Test DICOM files under new UIDs, and the request bodies other DICOMweb clients send them in.

Files come from pydicom's bundled ``test_files`` and from pydicom-data, globbed directly
(``get_testdata_file`` would go to the network).
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Any

import data_store  # type: ignore[import-untyped]
import orjson
import pydicom
from pydicom.uid import generate_uid

PYDICOM_FILES = Path(pydicom.__file__).parent / "data" / "test_files"
PYDICOM_DATA = Path(data_store.__file__).parent / "data"


def sample_path(name: str) -> Path:
    """A test file by name, from pydicom's files or pydicom-data's."""
    for folder in (PYDICOM_FILES, PYDICOM_DATA):
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(f"{name} is in neither {PYDICOM_FILES} nor {PYDICOM_DATA}")


def fresh(name: str, study: str | None = None) -> pydicom.Dataset:
    """The test file ``name`` (pixel data included) under a new series and SOP Instance UID,
    in ``study`` or a new study."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(sample_path(name), force=True)
    ds.StudyInstanceUID = study or generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    return ds


def part10(ds: pydicom.Dataset) -> bytes:
    """``ds`` as a Part 10 file."""
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def multipart(parts: list[tuple[dict[str, str], bytes]], part_type: str) -> tuple[bytes, str]:
    """A ``multipart/related`` body of ``(headers, body)`` parts and its Content-Type."""
    boundary = "b0undary-of-dicom-json-tests"
    body = b""
    for headers, data in parts:
        lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        body += f"--{boundary}\r\n{lines}\r\n".encode() + data + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    return body, f'multipart/related; type="{part_type}"; boundary={boundary}'


def dicom_json_body(
    datasets: list[pydicom.Dataset], pixel_type: str = "application/octet-stream"
) -> tuple[bytes, str]:
    """A DICOM JSON STOW-RS body: the JSON array, then one part per bulk value (values over
    1 KiB), named by ``Content-Location`` (``http://client.test/<SOP Instance UID>/...``).
    Encapsulated pixel data is sent one frame per part, all under one location, as
    ``pixel_type``."""
    bulk: list[tuple[dict[str, str], bytes]] = []
    current: list[pydicom.Dataset] = []

    def handler(element: Any) -> str:
        ds = current[-1]
        uri = f"http://client.test/{ds.SOPInstanceUID}/{len(bulk)}/{element.tag:08X}"
        values = [element.value]
        headers = {"Content-Type": "application/octet-stream", "Content-Location": uri}
        if element.tag == 0x7FE00010 and pixel_type != "application/octet-stream":
            count = int(ds.get("NumberOfFrames", 1) or 1)
            values = list(pydicom.encaps.generate_frames(element.value, number_of_frames=count))
            headers["Content-Type"] = pixel_type
        bulk.extend((dict(headers), value) for value in values)
        return uri

    items = []
    for ds in datasets:
        current.append(ds)
        items.append(ds.to_json_dict(1024, handler))
    metadata = ({"Content-Type": "application/dicom+json"}, orjson.dumps(items))
    return multipart([metadata, *bulk], "application/dicom+json")

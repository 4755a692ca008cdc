"""The baselines `ingest-files` measures the CLI against: pydicom alone, in worker processes.

``naive_loop`` is what a user would write to turn files into JSON-able values with pydicom and
nothing else (the issue-13 baseline): ``dcmread``, then each element's ``.value`` converted to
str / number / list, sequences recursed, binary values over 1 KiB skipped without being read,
and the result serialized. ``to_json_dict`` is pydicom's own DICOM JSON conversion (slower; kept
as a second, labelled baseline).

Run as a script, ``python -m bench.baselines DIR --workers N`` is that loop as a user runs it:
its own process, interpreter start-up and imports included, the files of ``DIR`` spread over
``N`` worker processes. ``bench ingest-files`` times it beside the ``dicom-repo ingest`` process.
"""

from __future__ import annotations

import argparse
import base64
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import orjson
import pydicom
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.valuerep import PersonName

BULK = 1024


def _value(value: Any) -> Any:
    if isinstance(value, PersonName | str):
        return str(value)
    if isinstance(value, MultiValue | list | tuple):
        return [_value(v) for v in value]
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, float):
        return float(value)
    if isinstance(value, int):
        return int(value)
    return value if value is None else str(value)


def _dict(ds: Dataset) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for tag in ds.keys():  # noqa: SIM118 (keys() does not convert the elements)
        raw = ds.get_item(tag, keep_deferred=True)
        if raw is None or (raw.VR != "SQ" and (raw.value is None and raw.length > BULK)):
            continue  # deferred bulk data: skipped, never read
        elem = ds[tag]
        value = elem.value
        if elem.VR == "SQ":
            out[elem.keyword or f"{int(tag):08X}"] = [_dict(item) for item in value]
        elif not (isinstance(value, bytes | bytearray) and len(value) > BULK):
            out[elem.keyword or f"{int(tag):08X}"] = _value(value)
    return out


def naive_loop(path: Path) -> int:
    """pydicom alone, the naive way: read, convert every element, serialize; bytes written."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(path, defer_size=BULK)
        out = _dict(ds.file_meta)
        out.update(_dict(ds))
    return len(orjson.dumps(out))


def to_json_dict(path: Path) -> int:
    """pydicom's ``Dataset.to_json_dict`` (large values deferred, then referenced by URI)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(path, defer_size=BULK)
        as_json = ds.to_json_dict(
            bulk_data_threshold=BULK, bulk_data_element_handler=lambda elem: f"file://{path}"
        )
    return len(orjson.dumps(as_json))


def main(argv: list[str] | None = None) -> None:
    """``python -m bench.baselines DIR --workers N``: the naive loop over DIR's ``*.dcm`` files."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    files = sorted(args.folder.glob("*.dcm"))
    with ProcessPoolExecutor(args.workers) as pool:
        written = sum(pool.map(naive_loop, files, chunksize=16))
    print(f"{len(files)} files, {written} bytes of JSON")


if __name__ == "__main__":
    main()

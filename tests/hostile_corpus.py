"""A corpus of hostile files, generated on the spot (nothing is downloaded).

Each :class:`Case` writes one file (or non-file) into a folder and says what ingest must do
with it: store it, refuse it with a reason containing ``reason``, or either (when both are
defensible, such as garbage that happens to parse), as long as nothing breaks.
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pydicom
from conftest import PYDICOM_FILES
from dicom_factory import base, ct_slice, write
from pydicom import uid
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

ACCEPT, REJECT, EITHER = "accept", "reject", "either"
SERIES = "1.2.826.0.1.3680043.10.1011.66"
DICOMDIR = PYDICOM_FILES / "dicomdirtests" / "DICOMDIR"


@dataclass(frozen=True)
class Case:
    """One hostile input: ``make(folder)`` creates it and returns its path."""

    name: str
    make: Callable[[Path], Path]
    expect: str
    reason: str = ""


def _bytes(name: str, data: bytes) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        path = folder / name
        path.write_bytes(data)
        return path

    return make


def _dataset(name: str, build: Callable[[], Dataset], *, raw: bool = False) -> Callable[..., Path]:
    def make(folder: Path) -> Path:
        ds = build()
        path = folder / name
        if raw:  # written as is: no file meta validation, so broken values survive
            ds.save_as(path, implicit_vr=False, little_endian=True)
        else:
            ds.save_as(path, enforce_file_format=True)
        return path

    return make


def _ct(**changes: object) -> Callable[[], Dataset]:
    def build() -> Dataset:
        ds = ct_slice(SERIES, 1, 0.0)
        for keyword, value in changes.items():
            if value is None:
                delattr(ds, keyword)
            else:
                setattr(ds, keyword, value)
        return ds

    return build


def _truncated(source: str, fraction: float) -> Case:
    data = (PYDICOM_FILES / source).read_bytes()
    cut = 132 + int((len(data) - 133) * fraction)
    # the reason is "truncated", or a missing UID when the cut falls between two elements
    return Case(f"cut-{source}-{cut}", _bytes(f"cut_{cut}_{source}", data[:cut]), REJECT)


def _element(group: int, elem: int, vr: str, value: bytes) -> bytes:
    if len(value) % 2:
        value += b"\0" if vr == "UI" else b" "
    return struct.pack("<HH2sH", group, elem, vr.encode(), len(value)) + value


def _nested(depth: int) -> bytes:
    """(0040,A730) sequences nested ``depth`` deep, undefined lengths, explicit VR LE."""
    inner = _element(0x0008, 0x0100, "SH", b"X")
    for level in range(depth):
        item = (struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF)
                + _element(0x0008, 0x0100, "SH", str(level).encode()) + inner
                + struct.pack("<HHI", 0xFFFE, 0xE00D, 0))  # fmt: skip
        inner = (struct.pack("<HH2sHI", 0x0040, 0xA730, b"SQ", 0, 0xFFFFFFFF) + item
                 + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0))  # fmt: skip
    return inner


def _deep(depth: int) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        path = write(_ct(SOPInstanceUID=generate_uid())(), folder)
        target = folder / f"deep_{depth}.dcm"
        path.rename(target)
        with target.open("ab") as out:  # (0040,A730) sorts after every element ct_slice writes
            out.write(_nested(depth))
        return target

    return make


def _special(name: str, create: Callable[[Path], None]) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        path = folder / name
        create(path)
        return path

    return make


def _socket(path: Path) -> None:
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(path))
    sock.close()


def _same_sop_other_series(folder: Path) -> Path:
    first = ct_slice(SERIES, 1, 0.0, sop="1.2.826.0.1.3680043.10.1011.77.1")
    write(first, folder).rename(folder / "conflict_a.dcm")
    second = ct_slice(SERIES + ".2", 1, 0.0, sop="1.2.826.0.1.3680043.10.1011.77.1")
    path = folder / "conflict_b.dcm"
    write(second, folder).rename(path)
    return path


def _odd_name(raw_name: bytes, expect: str, reason: str = "") -> Case:
    def make(folder: Path) -> Path:
        path = Path(os.fsdecode(os.fsencode(folder) + b"/" + raw_name))
        write(_ct(SOPInstanceUID=generate_uid())(), folder).rename(path)
        return path

    return Case(f"name-{raw_name!r}", make, expect, reason)


def cases() -> list[Case]:
    """Every hostile case (more than 60 kinds)."""
    text = b"This is not a DICOM file.\n" * 40
    meta_only = (PYDICOM_FILES / "CT_small.dcm").read_bytes()[:340]
    long_uid = "1." + "2" * 70
    out = [
        Case("empty", _bytes("empty.dcm", b""), REJECT, "not"),
        Case("text", _bytes("notes.txt", text), REJECT, "not"),
        Case("random", _bytes("random.dcm", os.urandom(4096)), REJECT, ""),
        Case("preamble-only", _bytes("preamble.dcm", b"\0" * 128 + b"DICM"), REJECT, ""),
        Case("meta-only", _bytes("meta.dcm", meta_only), REJECT, ""),
        Case("zeros", _bytes("zeros.dcm", b"\0" * 8192), REJECT, ""),
        Case("no-sop-uid", _dataset("nosop.dcm", _ct(SOPInstanceUID=None), raw=True), REJECT,
             "SOPInstanceUID"),
        Case("no-study-uid", _dataset("nostudy.dcm", _ct(StudyInstanceUID=None)), REJECT,
             "StudyInstanceUID"),
        Case("no-series-uid", _dataset("noseries.dcm", _ct(SeriesInstanceUID=None)), REJECT,
             "SeriesInstanceUID"),
        Case("letters-uid", _dataset("letters.dcm", _ct(SeriesInstanceUID="1.2.abc")), REJECT,
             "SeriesInstanceUID"),
        Case("long-uid", _dataset("long.dcm", _ct(StudyInstanceUID=long_uid)), REJECT,
             "StudyInstanceUID"),
        Case("empty-component-uid", _dataset("dots.dcm", _ct(SeriesInstanceUID="1..2")),
             REJECT, "SeriesInstanceUID"),
        Case("empty-uid", _dataset("emptyuid.dcm", _ct(SOPInstanceUID=""), raw=True), REJECT,
             "SOPInstanceUID"),
        Case("two-sop-uids", _dataset("twouids.dcm", _ct(SOPInstanceUID=["1.2.3", "1.2.4"]),
                                      raw=True), REJECT, "SOPInstanceUID"),
        Case("deep-90", _deep(90), REJECT, "nested"),
        Case("deep-300", _deep(300), REJECT, "nested"),
        Case("deep-20", _deep(20), ACCEPT),
        Case("fifo", _special("pipe.dcm", lambda p: os.mkfifo(p)), REJECT, "named pipe"),
        Case("socket", _special("sock.dcm", _socket), REJECT, "socket"),
        Case("symlink-to-device", _special("zero.dcm", lambda p: p.symlink_to("/dev/zero")),
             REJECT, "character device"),
        Case("dangling-symlink", _special("gone.dcm", lambda p: p.symlink_to(p.parent / "nope")),
             REJECT, "cannot read"),
        Case("conflicting-series", _same_sop_other_series, REJECT, "already stored"),
        _odd_name(b"x\xff.dcm", REJECT, "not valid UTF-8"),
        _odd_name(b"new\nline.dcm", ACCEPT),
        _odd_name("caf\u00e9 \u263a.dcm".encode(), ACCEPT),
        _odd_name(b"-rf", ACCEPT),
        Case("huge-text", _dataset("huge.dcm", _ct(PatientComments="x" * 60_000)), ACCEPT),
        Case("implicit-no-meta", _special("bare.dcm", _bare_implicit), ACCEPT),
        Case("dicomdir", _bytes("DICOMDIR", DICOMDIR.read_bytes()), REJECT, ""),
        Case("wrong-endian", _special("be.dcm", _wrong_endian), EITHER),
        Case("bad-vr", _bytes("badvr.dcm", _bad_vr()), EITHER),
        Case("bad-lengths", _bytes("badlen.dcm", _bad_length()), REJECT, ""),
    ]  # fmt: skip
    for source in ("CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "JPEG2000.dcm",
                   "SC_rgb_rle.dcm"):  # fmt: skip
        out += [_truncated(source, f) for f in (0.05, 0.15, 0.3, 0.45, 0.6, 0.75, 0.9, 0.99)]
    return out


def _bare_implicit(path: Path) -> None:
    ds = _ct(SOPInstanceUID=generate_uid())()
    del ds.file_meta
    ds.save_as(path, implicit_vr=True, little_endian=True)  # no preamble, no file meta


def _wrong_endian(path: Path) -> None:
    ds = base(uid.CTImageStorage, "CT", SERIES + ".9", sop=generate_uid())
    ds.save_as(path, enforce_file_format=True)
    data = bytearray(path.read_bytes())
    ts = uid.ExplicitVRLittleEndian.encode()
    at = data.find(ts)
    data[at : at + len(ts)] = uid.ExplicitVRBigEndian.encode().ljust(len(ts), b"\0")[: len(ts)]
    path.write_bytes(bytes(data))


def _bad_vr() -> bytes:
    data = bytearray((PYDICOM_FILES / "CT_small.dcm").read_bytes())
    at = data.find(b"\x08\x00\x60\x00CS")  # Modality: VR made up
    data[at + 4 : at + 6] = b"ZZ"
    return bytes(data)


def _bad_length() -> bytes:
    data = bytearray((PYDICOM_FILES / "MR_small.dcm").read_bytes())
    at = data.find(b"\x20\x00\x0e\x00UI")  # SeriesInstanceUID: a length far past the end
    data[at + 6 : at + 8] = struct.pack("<H", 0xFFF0)
    return bytes(data)


def good_files(folder: Path, count: int = 6) -> list[Path]:
    """Files that must all land, beside the hostile ones."""
    sources = [PYDICOM_FILES / n for n in ("CT_small.dcm", "MR_small.dcm", "rtplan.dcm")]
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for source in sources:
        ds = pydicom.dcmread(source)  # fresh UIDs: the hostile copies must not shadow these
        ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        out.append(folder / f"good_{source.name}")
        ds.save_as(out[-1])
    for number in range(count - len(sources)):
        path = write(ct_slice(SERIES + ".5", number + 1, float(number)), folder)
        out.append(path.rename(folder / f"good_ct_{number}.dcm"))
    return out

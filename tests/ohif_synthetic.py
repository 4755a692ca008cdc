"""Synthetic series for the OHIF comparison: one study per OHIF rule, with fixed UIDs so that
OHIF's results (``tests/ohif_reference/expected.json``) can be matched to ours."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import dicom_factory as f
from pydicom import uid
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

P = "1.2.840.10008.5.1.4.1.1."
Scenario = Callable[[str], list[Dataset]]
SCENARIOS: dict[str, Scenario] = {}


def u(*parts: object) -> str:
    """A fixed UID from ``parts``."""
    return generate_uid(entropy_srcs=[str(p) for p in parts])


def scenario(fn: Scenario) -> Scenario:
    SCENARIOS[fn.__name__] = fn
    return fn


def ct(name: str, zs: dict[int, float], series: str = "ct", **kw: object) -> list[Dataset]:
    return [f.ct_slice(u(name, series), n, z, sop=u(name, series, n), **kw) for n, z in zs.items()]


@scenario
def regular_ct(name: str) -> list[Dataset]:
    return ct(name, {3: 0.0, 1: 1.0, 5: 2.0, 2: 3.0, 4: 4.0})


@scenario
def irregular_spacing(name: str) -> list[Dataset]:
    return ct(name, {2: 0.0, 1: 1.0, 4: 2.0, 3: 3.5})


@scenario
def missing_slice(name: str) -> list[Dataset]:
    long = ct(name, {n: float(z) for n, z in enumerate([z for z in range(11) if z != 4], 1)})
    return long + ct(name, {1: 0.0, 2: 1.0, 3: 3.0, 4: 4.0, 5: 5.0}, series="short")


@scenario
def tilted(name: str) -> list[Dataset]:
    small, large = ct(name, {1: 0.0, 2: 1.0, 3: 2.0}), ct(name, {1: 0.0, 2: 1.0}, series="b")
    small[1].ImageOrientationPatient = [1, 0.005, 0, 0, 1, 0]
    large[1].ImageOrientationPatient = [1, 0.02, 0, 0, 1, 0]
    return small + large


@scenario
def mixed_sizes(name: str) -> list[Dataset]:
    slices = ct(name, {1: 0.0, 2: 1.0, 3: 2.0})
    f.image(slices[2], rows=8, columns=8)
    return slices


@scenario
def mixed_sop_classes(name: str) -> list[Dataset]:
    slices = ct(name, {1: 0.0, 2: 1.0, 3: 2.0, 4: 3.0})
    slices[3].SOPClassUID = slices[3].file_meta.MediaStorageSOPClassUID = P + "7"
    return slices


@scenario
def no_instance_number(name: str) -> list[Dataset]:
    slices = ct(name, {1: 0.0, 2: 5.0, 3: 6.5, 4: 7.0})
    for ds in slices[1:3]:
        del ds.InstanceNumber
    return slices


def _pet(name: str, series: str, n: int, z: float, time: float) -> Dataset:
    ds = f.ct_slice(u(name, series), n, z, sop=u(name, series, n))
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = P + "128"
    ds.Modality, ds.FrameReferenceTime = "PT", time
    return ds


@scenario
def dynamic_pet(name: str) -> list[Dataset]:
    dynamic = [_pet(name, "d", 1 + t * 4 + k, float(k), 1000.0 * (t + 1))
               for t in range(3) for k in range(4)]  # fmt: skip
    same = [_pet(name, "s", 1 + t * 3 + k, float(k), 1000.0) for t in range(2) for k in range(3)]
    return dynamic + same


@scenario
def cardiac_4d(name: str) -> list[Dataset]:
    out = []
    for t in range(2):
        for k in range(3):
            ds = f.ct_slice(u(name, "mr"), 1 + t * 3 + k, float(k), sop=u(name, "mr", t, k))
            ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = P + "4"
            ds.Modality, ds.CardiacNumberOfImages, ds.StackID = "MR", 2, "1"
            ds.InStackPositionNumber, ds.TriggerTime = k + 1, 100.0 * t
            out.append(ds)
    return out


@scenario
def nm_tomo(name: str) -> list[Dataset]:
    out = []
    for kind in ("RECON TOMO", "RECON GATED TOMO", "TOMO", "STATIC"):
        series = u(name, kind)
        nm = f.image(f.base(P + "20", "NM", series, sop=u(name, kind, 1)), frames=4)
        nm.ImageType = ["ORIGINAL", "PRIMARY", kind, "EMISSION"]
        nm.PixelSpacing, nm.SliceThickness = [4, 4], 4
        nm.DetectorInformationSequence = f.sequence(
            {"ImageOrientationPatient": [1, 0, 0, 0, 1, 0], "ImagePositionPatient": [0, 0, 0]}
        )
        out.append(nm)
    return out


@scenario
def multiframe(name: str) -> list[Dataset]:
    grouped = f.enhanced_ct(u(name, "g"), [0, 1, 2, 3], sop=u(name, "g", 1))
    grouped.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence = f.sequence(
        {"PixelSpacing": [1, 1], "SliceThickness": 1}
    )
    bare = f.enhanced_ct(u(name, "b"), [0, 1, 2], sop=u(name, "b", 1))
    flat = f.image(f.base(P + "2.1", "CT", u(name, "f"), sop=u(name, "f", 1)), frames=3)
    flat.PixelSpacing, flat.SliceThickness = [1, 1], 2
    flat.ImageOrientationPatient, flat.ImagePositionPatient = [1, 0, 0, 0, 1, 0], [0, 0, 0]
    timed = f.enhanced_ct(u(name, "t"), [0, 1, 0, 1], sop=u(name, "t", 1))
    timed.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence = f.sequence(
        {"PixelSpacing": [1, 1], "SliceThickness": 1}
    )
    timed.TimeSlotVector = [1, 1, 2, 2]
    singles = ct(name, {1: 0.0, 2: 1.0}, series="g")
    return [grouped, bare, flat, timed, *singles]


@scenario
def projections(name: str) -> list[Dataset]:
    return [f.projection(m, u(name, m), n, sop=u(name, m, n)) for m in ("CR", "DX", "MG")
            for n in (2, 1)]  # fmt: skip


@scenario
def videos(name: str) -> list[Dataset]:
    s = u(name, "v")
    out = [
        f.video(s, 1, sop=u(name, 1)),
        f.video(s, 2, transfer_syntax=uid.MPEG2MPML, sop=u(name, 2)),
        f.video(s, 3, sop_class=P + "7", transfer_syntax=uid.HEVCMP51, sop=u(name, 3)),
        f.secondary_capture(s, 4, frames=120, sop=u(name, 4)),
        f.video(s, 5, sop_class=P + "77.1.4.1", transfer_syntax=uid.ExplicitVRLittleEndian,
                sop=u(name, 5)),
    ]  # fmt: skip
    long_sc = f.image(f.base(P + "7.4", "OT", s, number=6, sop=u(name, 6)), frames=100)
    out[4].PixelData = bytes(16)
    out[4]["PixelData"].VR = "OB"
    return [*out, long_sc]


def _seg(name: str, key: str, n: int, ref: str, sops: list[str], cls: str = "66.4") -> Dataset:
    ds = f.image(f.base(P + cls, "SEG", u(name, key), number=n, sop=u(name, key, n)))
    ds.ReferencedSeriesSequence = f.sequence({
        "SeriesInstanceUID": ref,
        "ReferencedInstanceSequence": f.sequence(*({"ReferencedSOPInstanceUID": s} for s in sops)),
    })  # fmt: skip
    return ds


@scenario
def derived(name: str) -> list[Dataset]:
    volume, single = ct(name, {1: 0.0, 2: 1.0, 3: 2.0}), ct(name, {1: 0.0}, series="one")
    sops = [d.SOPInstanceUID for d in volume]
    ref, ref1 = u(name, "ct"), u(name, "one")
    segs = [_seg(name, "seg", 2, ref, sops), _seg(name, "seg", 1, ref, sops),
            _seg(name, "seg1", 1, ref1, [single[0].SOPInstanceUID]),
            _seg(name, "labelmap", 1, ref, sops, cls="66.7")]  # fmt: skip
    bare = _seg(name, "bare", 1, ref, sops)
    del bare.ReferencedSeriesSequence
    rt = f.base(P + "481.3", "RTSTRUCT", u(name, "rt"), sop=u(name, "rt", 1))
    rt.ReferencedFrameOfReferenceSequence = f.sequence(
        {
            "RTReferencedStudySequence": f.sequence(
                {
                    "RTReferencedSeriesSequence": f.sequence(
                        {
                            "SeriesInstanceUID": ref,
                            "ContourImageSequence": f.sequence(
                                *({"ReferencedSOPInstanceUID": s} for s in sops)
                            ),
                        }
                    )
                }
            )
        }
    )
    pmap = f.parametric_map(u(name, "pm"), sops, sop=u(name, "pm", 1))
    pmap.ReferencedSeriesSequence = f.sequence({"SeriesInstanceUID": ref})
    lone_pmap = f.parametric_map(u(name, "pm2"), sops, sop=u(name, "pm2", 1))
    return [*volume, *single, *segs, bare, rt, pmap, lone_pmap]


@scenario
def documents_and_reports(name: str) -> list[Dataset]:
    ref = u(name, "ct")
    reports = [f.sr_3d(u(name, "sr"), ref, number=n, sop=u(name, "sr", n)) for n in (1, 3, 2)]
    for ds in reports:
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = P + "88.22"
    cda = f.pdf(u(name, "cda"), 1, sop=u(name, "cda", 1))
    cda.SOPClassUID = cda.file_meta.MediaStorageSOPClassUID = P + "104.2"
    return [*reports, f.sr_3d(u(name, "3d"), ref, sop=u(name, "3d", 1)),
            f.pdf(u(name, "pdf"), 1, sop=u(name, "pdf", 1)),
            f.pdf(u(name, "pdf"), 2, description="Letters", sop=u(name, "pdf", 2)), cda,
            f.key_objects(u(name, "ko"), ref, [], sop=u(name, "ko", 1)),
            f.presentation_state(u(name, "pr"), ref, sop=u(name, "pr", 1))]  # fmt: skip


@scenario
def microscopy_and_waveforms(name: str) -> list[Dataset]:
    s = u(name, "wsi")
    levels = [f.whole_slide_level(s, n, size, sop=u(name, "wsi", n))
              for n, size in ((2, 512), (1, 1024), (3, 256))]  # fmt: skip
    ecg = f.base(P + "9.1.1", "ECG", u(name, "ecg"), sop=u(name, "ecg", 1))
    ecg.WaveformSequence = f.sequence({"NumberOfWaveformChannels": 2, "NumberOfWaveformSamples": 4,
                                       "SamplingFrequency": 500})  # fmt: skip
    return [*levels, ecg]


@scenario
def unclaimed_and_geometry_free(name: str) -> list[Dataset]:
    out = []
    for cls in ("6", "5", "3", "82.1", "77.1.5.1"):  # retired US, NM, US MF; corneal; ophthalmic
        ds = f.image(f.base(P + cls, "OT", u(name, cls), sop=u(name, cls, 1)))
        out.append(ds)
    for n in (1, 2, 3):  # an ultrasound cine of single frames without positions
        us = f.image(f.base(P + "6.1", "US", u(name, "us"), number=n, sop=u(name, "us", n)))
        us.TriggerTime = 10.0 * n
        out.append(us)
    pair = ct(name, {1: 0.0, 2: 7.0}, series="pair")
    for ds in pair:
        ds.Modality = "OT"
    return out + pair


def write_all(folder: Path) -> Iterator[Path]:
    """Write every scenario's files under ``folder``, one study per scenario."""
    for name, build in SCENARIOS.items():
        study = u("study", name)
        for ds in build(name):
            ds.StudyInstanceUID = study
            yield f.write(ds, folder / name)

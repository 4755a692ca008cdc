"""The SOP classes each built-in handler claims: exactly OHIF 3.13.2's lists.

Each list is copied from the OHIF handler named in its docstring, resolved through OHIF's
``sopClassDictionary`` (``platform/core/src/utils/sopClassDictionary.js``). Where OHIF names a
class its dictionary does not define (the stack handler's ``UltrasoundImageStorageRET``), the
entry is ``undefined`` in OHIF and claims nothing, so it is left out here too: retired
ultrasound and retired NM / ultrasound multi-frame images are unsupported in OHIF.
"""

from __future__ import annotations

_P = "1.2.840.10008.5.1.4.1.1."

STACK: tuple[str, ...] = tuple(
    _P + s
    for s in (
        "1",  # Computed Radiography
        "1.1", "1.1.1",  # Digital X-Ray for presentation / processing
        "1.2", "1.2.1",  # Digital Mammography
        "1.3", "1.3.1",  # Digital Intra-Oral X-Ray
        "2", "2.1", "2.2",  # CT, Enhanced CT, Legacy Converted Enhanced CT
        "3.1",  # Ultrasound Multi-frame
        "4", "4.1", "4.3", "4.4",  # MR, Enhanced MR, Enhanced MR Color, Legacy Converted MR
        "6.1",  # Ultrasound
        "7", "7.1", "7.2", "7.3", "7.4",  # Secondary Capture and its multi-frame kinds
        "12.1", "12.1.1", "12.2", "12.2.1",  # XA, Enhanced XA, XRF, Enhanced XRF
        "13.1.1", "13.1.2", "13.1.3",  # X-Ray 3D Angiographic / Craniofacial, Breast Tomo
        "82.1",  # Corneal Topography Map
        "13.1.4", "13.1.5",  # Breast Projection X-Ray
        "14.1", "14.2",  # Intravascular OCT
        "20",  # Nuclear Medicine
        "77.1.1", "77.1.1.1",  # VL Endoscopic, Video Endoscopic
        "77.1.2", "77.1.2.1",  # VL Microscopic, Video Microscopic
        "77.1.3",  # VL Slide-Coordinates Microscopic
        "77.1.4", "77.1.4.1",  # VL Photographic, Video Photographic
        "77.1.5.1", "77.1.5.2", "77.1.5.4",  # Ophthalmic Photography 8/16 bit, Tomography
        "128", "130", "128.1",  # PET, Enhanced PET, Legacy Converted Enhanced PET
        "481.1",  # RT Image
        "6.2",  # Enhanced US Volume
        "481.2",  # RT Dose
    )
)  # fmt: skip
"""OHIF's stack handler (``extensions/default/src/getSopClassHandlerModule.js``)."""

IS_IMAGE: frozenset[str] = frozenset(
    _P + s
    for s in (
        "1", "1.1", "1.1.1", "1.2", "1.2.1", "1.3", "1.3.1", "2", "2.1", "2.2", "3.1", "6.2",
        "4", "4.1", "4.3", "4.4", "6.1", "7", "7.1", "7.2", "7.3", "7.4", "12.1", "12.1.1",
        "12.2", "12.2.1", "13.1.1", "13.1.2", "13.1.3", "13.1.4", "13.1.5", "14.1", "14.2",
        "20", "77.1.1", "77.1.1.1", "77.1.2", "77.1.2.1", "77.1.3", "77.1.4", "77.1.4.1",
        "77.1.5.1", "77.1.5.2", "77.1.5.4", "77.1.6", "128", "130", "128.1", "481.1",
    )
)  # fmt: skip
"""OHIF's ``isImage`` list (``platform/core/src/utils/isImage.js``): SOP classes with pixels."""

VIDEO: tuple[str, ...] = (
    _P + "77.1.2.1",  # Video Microscopic
    _P + "77.1.4.1",  # Video Photographic
    _P + "77.1.1.1",  # Video Endoscopic
    _P + "7",  # Secondary Capture (video if H.264/HEVC or >= 90 frames)
    _P + "7.4",  # Multi-frame True Color Secondary Capture (likewise)
)
"""OHIF's ``dicom-video`` handler (``extensions/dicom-video/src/getSopClassHandlerModule.js``)."""

VIDEO_SECONDARY_CAPTURE: frozenset[str] = frozenset({_P + "7", _P + "7.4"})
"""Secondary capture classes the video handler takes when they have at least 90 frames."""

VIDEO_TRANSFER_SYNTAXES: frozenset[str] = frozenset(
    f"1.2.840.10008.1.2.4.{n}" for n in range(102, 109)
)
"""H.264 (102-106) and HEVC (107, 108): the only transfer syntaxes OHIF's video handler takes
(MPEG-2, 100 and 101, is not among them)."""

ECG: tuple[str, ...] = tuple(_P + s for s in ("9.1.1", "9.1.2", "9.1.3", "9.2.1", "9.3.1"))
"""OHIF's ECG waveform handler (``extensions/cornerstone/src/getSopClassHandlerModule.js``):
12-lead, general and ambulatory ECG, hemodynamic, cardiac electrophysiology."""

SEG: tuple[str, ...] = (_P + "66.4", _P + "66.7")
"""OHIF's ``dicom-seg`` handler: Segmentation and Label Map Segmentation."""

PARAMETRIC_MAP: tuple[str, ...] = (_P + "30",)
"""OHIF's ``dicom-pmap`` handler."""

WHOLE_SLIDE: tuple[str, ...] = (_P + "77.1.6",)
"""OHIF's ``DicomMicroscopySopClassHandler`` (in ``@ohif/extension-cornerstone``)."""

PDF: tuple[str, ...] = (_P + "104.1",)
"""OHIF's ``dicom-pdf`` handler: Encapsulated PDF only (CDA, STL, OBJ and MTL are
unsupported in OHIF)."""

SR: tuple[str, ...] = (_P + "88.11", _P + "88.22", _P + "88.33", _P + "88.34")
"""OHIF's ``dicom-sr`` handler: Basic Text, Enhanced, Comprehensive and Comprehensive 3D SR."""

SR_3D: tuple[str, ...] = (_P + "88.34",)
"""OHIF's ``dicom-sr-3d`` handler (offered Comprehensive 3D SR before ``dicom-sr``)."""

RTSTRUCT: tuple[str, ...] = (_P + "481.3",)
"""OHIF's ``dicom-rt`` handler."""

KEY_OBJECT_SELECTION: tuple[str, ...] = (_P + "88.59",)
"""Key Object Selection: our handler (OHIF's basic viewer has none)."""

PRESENTATION_STATES: tuple[str, ...] = tuple(
    _P + s for s in ("11.1", "11.2", "11.3", "11.4", "11.5", "11.8", "11.12")
)
"""Softcopy presentation states: our handler (OHIF's basic viewer has none)."""

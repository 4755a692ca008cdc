"""The SOP classes each built-in handler claims, named as in PS3.6 (via pydicom's UID names)."""

from __future__ import annotations

from pydicom import uid

IMAGE: tuple[str, ...] = (
    uid.ComputedRadiographyImageStorage,
    uid.DigitalXRayImageStorageForPresentation,
    uid.DigitalXRayImageStorageForProcessing,
    uid.DigitalMammographyXRayImageStorageForPresentation,
    uid.DigitalMammographyXRayImageStorageForProcessing,
    uid.DigitalIntraOralXRayImageStorageForPresentation,
    uid.DigitalIntraOralXRayImageStorageForProcessing,
    uid.CTImageStorage,
    uid.EnhancedCTImageStorage,
    uid.LegacyConvertedEnhancedCTImageStorage,
    uid.UltrasoundMultiFrameImageStorage,
    "1.2.840.10008.5.1.4.1.1.3",  # Ultrasound Multi-frame Image Storage (retired)
    uid.MRImageStorage,
    uid.EnhancedMRImageStorage,
    uid.EnhancedMRColorImageStorage,
    uid.LegacyConvertedEnhancedMRImageStorage,
    uid.NuclearMedicineImageStorage,
    "1.2.840.10008.5.1.4.1.1.5",  # Nuclear Medicine Image Storage (retired)
    uid.UltrasoundImageStorage,
    "1.2.840.10008.5.1.4.1.1.6",  # Ultrasound Image Storage (retired)
    uid.EnhancedUSVolumeStorage,
    uid.SecondaryCaptureImageStorage,
    uid.MultiFrameSingleBitSecondaryCaptureImageStorage,
    uid.MultiFrameGrayscaleByteSecondaryCaptureImageStorage,
    uid.MultiFrameGrayscaleWordSecondaryCaptureImageStorage,
    uid.MultiFrameTrueColorSecondaryCaptureImageStorage,
    uid.XRayAngiographicImageStorage,
    uid.EnhancedXAImageStorage,
    uid.XRayRadiofluoroscopicImageStorage,
    uid.EnhancedXRFImageStorage,
    "1.2.840.10008.5.1.4.1.1.12.3",  # X-Ray Angiographic Bi-Plane Image Storage
    uid.XRay3DAngiographicImageStorage,
    uid.XRay3DCraniofacialImageStorage,
    uid.BreastTomosynthesisImageStorage,
    uid.BreastProjectionXRayImageStorageForPresentation,
    uid.BreastProjectionXRayImageStorageForProcessing,
    uid.IntravascularOpticalCoherenceTomographyImageStorageForPresentation,
    uid.IntravascularOpticalCoherenceTomographyImageStorageForProcessing,
    uid.PositronEmissionTomographyImageStorage,
    uid.LegacyConvertedEnhancedPETImageStorage,
    uid.EnhancedPETImageStorage,
    uid.RTImageStorage,
    uid.RTDoseStorage,
    uid.VLEndoscopicImageStorage,
    uid.VLMicroscopicImageStorage,
    uid.VLSlideCoordinatesMicroscopicImageStorage,
    uid.VLPhotographicImageStorage,
    uid.OphthalmicPhotography8BitImageStorage,
    uid.OphthalmicPhotography16BitImageStorage,
    uid.OphthalmicTomographyImageStorage,
    uid.OphthalmicOpticalCoherenceTomographyEnFaceImageStorage,
    uid.WideFieldOphthalmicPhotographyStereographicProjectionImageStorage,
    uid.WideFieldOphthalmicPhotography3DCoordinatesImageStorage,
    uid.DermoscopicPhotographyImageStorage,
    uid.PhotoacousticImageStorage,
)
"""Image storage SOP classes the stack handler shows as images."""

SECONDARY_CAPTURE: tuple[str, ...] = (
    uid.SecondaryCaptureImageStorage,
    uid.MultiFrameSingleBitSecondaryCaptureImageStorage,
    uid.MultiFrameGrayscaleByteSecondaryCaptureImageStorage,
    uid.MultiFrameGrayscaleWordSecondaryCaptureImageStorage,
    uid.MultiFrameTrueColorSecondaryCaptureImageStorage,
)
"""Secondary capture classes: the video handler takes those that carry video."""

VIDEO: tuple[str, ...] = (
    uid.VideoEndoscopicImageStorage,
    uid.VideoMicroscopicImageStorage,
    uid.VideoPhotographicImageStorage,
)
"""The video SOP classes."""

VIDEO_TRANSFER_SYNTAXES: frozenset[str] = frozenset(
    str(ts) for ts in (*uid.MPEGTransferSyntaxes, uid.HEVCMP51, uid.HEVCM10P51)
)
"""MPEG-2, H.264 (MPEG-4 AVC) and HEVC transfer syntaxes."""

SR: tuple[str, ...] = (
    uid.BasicTextSRStorage,
    uid.EnhancedSRStorage,
    uid.ComprehensiveSRStorage,
)
"""Structured reports rendered as HTML (the seed's example handler)."""

SR_3D: tuple[str, ...] = (uid.Comprehensive3DSRStorage,)
"""Comprehensive 3D SR: measurements with spatial coordinates, handled separately."""

SEG: tuple[str, ...] = (uid.SegmentationStorage,)
RTSTRUCT: tuple[str, ...] = (uid.RTStructureSetStorage,)
PARAMETRIC_MAP: tuple[str, ...] = (uid.ParametricMapStorage,)
WHOLE_SLIDE: tuple[str, ...] = (uid.VLWholeSlideMicroscopyImageStorage,)
KEY_OBJECT_SELECTION: tuple[str, ...] = (uid.KeyObjectSelectionDocumentStorage,)

ENCAPSULATED_DOCUMENTS: tuple[str, ...] = (
    uid.EncapsulatedPDFStorage,
    uid.EncapsulatedCDAStorage,
    uid.EncapsulatedSTLStorage,
    uid.EncapsulatedOBJStorage,
    uid.EncapsulatedMTLStorage,
)
"""Encapsulated PDF, CDA and 3D model documents."""

PRESENTATION_STATES: tuple[str, ...] = (
    uid.GrayscaleSoftcopyPresentationStateStorage,
    uid.ColorSoftcopyPresentationStateStorage,
    uid.PseudoColorSoftcopyPresentationStateStorage,
    uid.BlendingSoftcopyPresentationStateStorage,
    uid.XAXRFGrayscaleSoftcopyPresentationStateStorage,
    uid.AdvancedBlendingPresentationStateStorage,
    uid.VariableModalityLUTSoftcopyPresentationStateStorage,
)
"""Softcopy presentation states (not the volumetric ones)."""

SINGLE_IMAGE_MODALITIES = frozenset({"CR", "DX", "MG"})
"""Modalities whose images are each their own display set, as in OHIF."""

RECONSTRUCTABLE_MODALITIES = frozenset({"CT", "MR", "PT", "NM"})
"""Modalities whose stacks can be sorted along the slice normal and reconstructed."""

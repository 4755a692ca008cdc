"""The ECG waveform handler (OHIF's ``DicomEcgSopClassHandler``).

Follows OHIF 3.13.2 ``extensions/cornerstone/src/getSopClassHandlerModule.js``: one display set
per ECG, hemodynamic or cardiac electrophysiology waveform instance, not derived, with no image
frames, labelled with the series description or "ECG". ``extras`` describes the first waveform
multiplex group (what OHIF's ``buildEcgModule`` hands the ECG viewport).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..models import Instance
from . import jsvalues as js
from . import sop_classes
from .display_set import DisplaySet
from .handler import HandlerContext, SopClassHandler
from .labels import text


def _ecg_module(md: Mapping[str, Any]) -> dict[str, Any]:
    groups = md.get("WaveformSequence")
    group = groups[0] if isinstance(groups, list) and groups else None
    if not isinstance(group, Mapping):
        return {}
    channels = group.get("ChannelDefinitionSequence") or []
    return {
        "number_of_waveform_channels": group.get("NumberOfWaveformChannels") or 0,
        "number_of_waveform_samples": group.get("NumberOfWaveformSamples") or 0,
        "sampling_frequency": group.get("SamplingFrequency") or 1,
        "multiplex_group_label": group.get("MultiplexGroupLabel") or "",
        "channel_sources": [
            js.item(js.first(ch.get("ChannelSourceSequence")), "CodeMeaning") or ""
            for ch in channels
            if isinstance(ch, Mapping)
        ],
    }


def ecg_display_sets(instances: Sequence[Instance], context: HandlerContext) -> list[DisplaySet]:
    """One ECG display set per instance."""
    return [
        context.display_set(
            [inst],
            plugin="dicom-ecg",
            modality=text(inst.metadata.get("Modality")),
            label=js.template(inst.metadata.get("SeriesDescription"))
            if js.truthy(inst.metadata.get("SeriesDescription"))
            else "ECG",
            num_image_frames=0,
            is_multi_frame=False,
            extras={"ecg": _ecg_module(inst.metadata)},
        )
        for inst in instances
    ]


HANDLER = SopClassHandler("ecg", sop_classes.ECG, ecg_display_sets)
"""The built-in ECG handler (OHIF's ``@ohif/extension-cornerstone...DicomEcgSopClassHandler``)."""

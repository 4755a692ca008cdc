"""Metadata serialized by a parse worker reads like the dict it came from and is stored as is."""

from __future__ import annotations

import pickle
from pathlib import Path

import orjson
import pydicom

from repository.engine import dumps
from repository.reading import read_file
from repository.serialized import SerializedMetadata

CT_SMALL = Path(pydicom.__file__).parent / "data" / "test_files" / "CT_small.dcm"


def test_serialized_metadata_survives_the_trip_from_a_worker_unchanged() -> None:
    metadata = dict(read_file(CT_SMALL).metadata)
    sent = pickle.loads(pickle.dumps(SerializedMetadata.of(metadata)))
    assert sent["PatientName"] == metadata["PatientName"]  # decoded beside the JSON
    assert sent["ImagePositionPatient"] == metadata["ImagePositionPatient"]  # from the JSON
    assert "Modality" in sent and "NoSuchKeyword" not in sent
    assert dict(sent) == orjson.loads(orjson.dumps(metadata))
    assert orjson.loads(dumps({"m": sent})) == {"m": orjson.loads(orjson.dumps(metadata))}

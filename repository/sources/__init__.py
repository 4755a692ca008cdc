"""Data sources: code that fills the store from somewhere else, as OHIF's data sources do.

File ingest lives in :mod:`repository.ingest`; :mod:`repository.sources.dicomweb` pulls from a
DICOMweb server (QIDO-RS and WADO-RS), one series list per server.
"""

from __future__ import annotations

from .dicomweb import DicomWebSource
from .endpoint import data_source_name, parse_header, redact_url
from .pull import PullError, PullProgress, PullReport

__all__ = [
    "DicomWebSource",
    "PullError",
    "PullProgress",
    "PullReport",
    "data_source_name",
    "parse_header",
    "redact_url",
]

"""Instance metadata serialized to JSON where it was parsed, so the writer need not rebuild it.

File ingest parses in worker processes and writes in one. Sent as a dict, an instance's metadata
(hundreds of keys, strings, nested items) costs the writer more to unpickle than the worker took
to build it, and the writer then serializes it again for the database. A worker sends a
:class:`SerializedMetadata` instead: the JSON bytes, plus the study- and series-level attributes
the writer copies into the study and series rows, already decoded. The database receives those
bytes as they are (:func:`json_default`); any other key read decodes the JSON once.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

import orjson

from .normalize import SERIES_KEYWORDS, STUDY_KEYWORDS, Metadata

DECODED_KEYWORDS = frozenset(STUDY_KEYWORDS) | frozenset(SERIES_KEYWORDS)
"""The attributes kept decoded beside the JSON (what the writer reads of an instance)."""


class SerializedMetadata(Mapping[str, Any]):
    """A read-only mapping over metadata held as JSON bytes (see the module doc)."""

    __slots__ = ("_decoded", "_head", "json")

    def __init__(self, json: bytes, head: Metadata) -> None:
        self.json = json
        self._head = head
        self._decoded: Metadata | None = None

    @classmethod
    def of(cls, metadata: Mapping[str, Any]) -> SerializedMetadata:
        """Serialize ``metadata`` (a naturalized dict)."""
        head = {k: metadata[k] for k in DECODED_KEYWORDS & metadata.keys()}
        return cls(to_json(metadata), head)

    def _all(self) -> Metadata:
        if self._decoded is None:
            self._decoded = orjson.loads(self.json)
        return self._decoded

    def __getitem__(self, key: str) -> Any:
        if key in DECODED_KEYWORDS:
            return self._head[key]
        return self._all()[key]

    def __contains__(self, key: object) -> bool:
        if key in DECODED_KEYWORDS:
            return key in self._head
        return key in self._all()

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())

    def __reduce__(self) -> tuple[Any, ...]:
        return SerializedMetadata, (self.json, self._head)


def json_default(value: Any) -> Any:
    """orjson ``default``: a :class:`SerializedMetadata` is written as its JSON, verbatim."""
    if isinstance(value, SerializedMetadata):
        return orjson.Fragment(value.json)
    raise TypeError(f"Type is not JSON serializable: {type(value).__name__}")


_STRING_OR_EXPONENT = re.compile(rb'"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?e\+\d+')


def to_json(value: Any) -> bytes:
    """``value`` as JSON for the database: orjson's, except that a float orjson writes with a
    positive exponent (``1e+16``: an integral value of 1e16 or more) is written out in full with
    ``.0``. PostgreSQL's JSONB keeps ``1e+16`` as the numeric 10000000000000000, which reads
    back as an int; ``10000000000000000.0`` reads back as the float it was."""
    data = orjson.dumps(value, default=json_default)
    if b"e+" not in data:  # no such float (nearly always): nothing to scan
        return data
    return _STRING_OR_EXPONENT.sub(_written_out, data)


def _written_out(match: re.Match[bytes]) -> bytes:
    text = match.group(0)
    return text if text.startswith(b'"') else b"%d.0" % int(float(text))

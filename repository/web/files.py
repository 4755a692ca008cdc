"""Which stored file belongs to an instance: only the one its ingest recorded, never a path
built from the request.

An instance ingested from a file (``dicom-repo ingest`` or STOW-RS) has the instance-level
imageId ``dicomfile:<absolute path>``; its BulkDataURIs point into that same file. An instance
known only by its metadata (pulled from another DICOMweb server) has no file here: requests for
its pixels or bulk data answer 404 with the WADO-RS root of the server it came from.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import orjson
from sqlalchemy import Engine, select

from .._reads import json_text
from ..image_id import FILE_PREFIX
from ..schema import INSTANCE_IN_SERIES, instance_table, same_study, series_list_table, series_table
from .errors import not_found
from .numbers import parse_int


@dataclass(frozen=True)
class StoredInstance:
    """An instance's row: its file (if any), where it came from, and its stored metadata."""

    uids: tuple[str, str, str]
    path: Path | None
    wado_root: str | None
    transfer_syntax_uid: str | None
    number_of_frames: int | None
    metadata_text: str

    @property
    def metadata(self) -> dict[str, Any]:
        """The stored (naturalized) metadata."""
        return orjson.loads(self.metadata_text)  # type: ignore[no-any-return]

    def require_file(self) -> Path:
        """The instance's file, else a 404 saying where the instance lives."""
        study, series, sop = self.uids
        if self.path is None:
            where = (
                f"from {self.wado_root}/studies/{study}/series/{series}/instances/{sop}"
                if self.wado_root
                else "from the server its metadata came from (no WADO-RS root was recorded)"
            )
            raise not_found(
                f"instance {sop} is known here only by its metadata; retrieve it {where}"
            )
        if not self.path.is_file():
            raise not_found(f"the file recorded for instance {sop} is missing: {self.path}")
        return self.path


def find_instance(engine: Engine, uids: list[str]) -> StoredInstance:
    """The stored instance under these study, series and SOP Instance UIDs, else 404."""
    stmt = (
        select(instance_table.c.image_id, series_list_table.c.wado_root,
               instance_table.c.transfer_syntax_uid, instance_table.c.number_of_frames,
               json_text(instance_table.c.metadata))
        .join(series_table, INSTANCE_IN_SERIES)
        .join(series_list_table, same_study(series_list_table, series_table)
              & (series_list_table.c.id == series_table.c.series_list_id))
        .where(instance_table.c.study_instance_uid == uids[0],
               series_table.c.series_instance_uid == uids[1],
               instance_table.c.sop_instance_uid == uids[2])
    )  # fmt: skip
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    if not rows:
        raise not_found(f"no instance {uids[2]} in series {uids[1]} of study {uids[0]}")
    # The same instance may be known from several data sources: prefer the copy with a file.
    row = max(rows, key=lambda r: str(r[0]).startswith(FILE_PREFIX))
    image_id = str(row[0])
    path = Path(image_id[len(FILE_PREFIX) :]) if image_id.startswith(FILE_PREFIX) else None
    return StoredInstance((uids[0], uids[1], uids[2]), path, row[1], row[2], row[3], row[4])


@dataclass(frozen=True)
class BulkLocation:
    """Where one bulk value lies in the instance's file: a byte range, or an element to read."""

    path: Path
    offset: int | None
    length: int | None
    tag: int | None


def bulk_location(stored: StoredInstance, element_path: str) -> BulkLocation:
    """Resolve ``7FE00010`` or ``00540016/0/00181072`` to the recorded place of that value."""
    from ..normalize import to_dicom_json

    node: Any = to_dicom_json(stored.metadata)
    parts = element_path.strip("/").split("/")
    element: Any = None
    try:
        for depth, part in enumerate(parts):
            if depth % 2 == 0:
                element = node[part.upper()]
            else:
                node = element["Value"][parse_int("bulk data path: item", part)]
    except (KeyError, IndexError, ValueError, TypeError):
        element = None
    uri = element.get("BulkDataURI") if isinstance(element, dict) and len(parts) % 2 else None
    if not uri:
        raise not_found(f"instance {stored.uids[2]} has no bulk data at {element_path!r}")
    path = stored.require_file()
    parsed = urlsplit(str(uri))
    if parsed.scheme != "file" or Path(unquote(parsed.path)) != path:
        raise not_found(f"the bulk data at {element_path!r} of {stored.uids[2]} is not in its file")
    query = parse_qs(parsed.query)

    def number(name: str) -> int | None:
        return int(query[name][0]) if name in query else None

    tag = query["tag"][0] if "tag" in query else None
    return BulkLocation(path, number("offset"), number("length"), int(tag, 16) if tag else None)

"""Run as a script: import the package with one more typed instance column, then use it.

``python tests/extended_columns.py URL`` adds ``slice_thickness`` (from SliceThickness) to
``repository.columns.INSTANCE_COLUMNS`` the moment that module is loaded, before anything derives
from it, exactly as a contributor's one new entry would. It then creates the (scratch) tables in
the empty database at URL, stores instances through the public API, reads them back, updates
them, and prints what it saw as JSON for tests/test_columns.py to check.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from types import ModuleType
from typing import Any

import orjson
from sqlalchemy import text

SOP_CLASS = "1.2.840.10008.5.1.4.1.1.2"
STUDY, SERIES_BIG, SERIES_SMALL = "1.2.3", "1.2.3.1", "1.2.3.2"
BIG = 70  # over the COPY threshold: PostgreSQL writes these with COPY


class _ExtendColumns(importlib.abc.MetaPathFinder):
    """Appends the new column to INSTANCE_COLUMNS right after repository.columns executes."""

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name != "repository.columns":
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        assert spec is not None and spec.loader is not None
        original = spec.loader.exec_module

        def exec_module(module: ModuleType) -> None:
            original(module)
            thickness = module.TypedColumn(
                "slice_thickness", module.SqlType("float"), ("SliceThickness",),
                lambda value, keyword: None if value is None else float(value), float | None,
                index=True,
            )  # fmt: skip
            module.INSTANCE_COLUMNS = (*module.INSTANCE_COLUMNS, thickness)

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def instance(series: str, number: int, thickness: float) -> dict[str, Any]:
    return {
        "StudyInstanceUID": STUDY, "SeriesInstanceUID": series,
        "SOPInstanceUID": f"{series}.{number}", "SOPClassUID": SOP_CLASS,
        "InstanceNumber": number, "SliceThickness": thickness,
    }  # fmt: skip


def main(url: str) -> dict[str, Any]:
    sys.meta_path.insert(0, _ExtendColumns())
    from repository import Store
    from repository.engine import make_engine
    from repository.schema import metadata_obj

    engine = make_engine(url)
    metadata_obj.create_all(engine)  # the scratch tables, new column included
    store = Store(engine)
    store.add_instances([instance(SERIES_BIG, i, 1.25) for i in range(1, BIG + 1)])
    store.add_instances([instance(SERIES_SMALL, i, 2.5) for i in range(1, 3)])
    read_big = store.get_series(STUDY, SERIES_BIG)
    one = store.get_instance(STUDY, SERIES_SMALL, f"{SERIES_SMALL}.1")
    store.update_metadata_for_series(STUDY, SERIES_SMALL, {"SliceThickness": 5.0})
    with engine.connect() as conn:
        stored = dict(conn.execute(text(
            "SELECT sop_instance_uid, slice_thickness FROM instance")).all())  # fmt: skip
    indexes = sorted(i.name or "" for i in metadata_obj.tables["instance"].indexes)
    assert read_big is not None and one is not None
    result = {
        "indexes": indexes,
        "read_series": sorted({i.slice_thickness for i in read_big.instances}),
        "read_instance": one.slice_thickness,
        "stored": stored,
    }
    store.close()
    engine.dispose()
    return result


if __name__ == "__main__":
    sys.stdout.write(orjson.dumps(main(sys.argv[1])).decode())

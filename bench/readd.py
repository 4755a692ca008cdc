"""Re-adding known instances on a fresh PostgreSQL database (no planner statistics yet).

    python -m bench.readd --db postgresql://postgres@127.0.0.1/robustness --size 50000

Instances are copies of pydicom's CT_small (realistic metadata) with fresh UIDs, 100 per series,
5 series per study, added in batches of 500 as ``dicom-repo ingest`` does. Autovacuum is turned
off on the tables so that the re-add runs before any statistics exist, as right after a first
load; then the same re-add runs after ANALYZE (the baseline). The plans of the conflict check's
two queries are printed before and after.
"""

from __future__ import annotations

import copy
import time
import uuid
from pathlib import Path

import click
import pydicom
from pydicom.uid import generate_uid
from sqlalchemy import Connection, Engine, text
from sqlalchemy.engine import make_url

import repository
from repository import migrate
from repository.engine import make_engine
from repository.lookups import explain, series_of_sop_instances
from repository.normalize import NormalizedInstance
from repository.reading import read_file

from .common import emit

BATCH = 500


def _instances(size: int) -> list[NormalizedInstance]:
    template = read_file(Path(pydicom.__file__).parent / "data" / "test_files" / "CT_small.dcm")
    out = []
    study = series = ""
    for n in range(size):
        if n % 500 == 0:
            study = generate_uid()
        if n % 100 == 0:
            series = generate_uid()
        sop = generate_uid()
        md = copy.deepcopy(template.metadata)
        md.update(StudyInstanceUID=study, SeriesInstanceUID=series, SOPInstanceUID=sop,
                  InstanceNumber=n % 100 + 1)  # fmt: skip
        typed = {**template.typed, "sop_instance_uid": sop, "instance_number": n % 100 + 1}
        out.append(NormalizedInstance(study, series, sop, typed, None, None, None, md))
    return out


_IN_LIST = text(  # the check before lookups.py: one IN list (as = ANY) per chunk of 900
    "SELECT series_id, sop_instance_uid FROM instance "
    "WHERE sop_instance_uid = ANY(CAST(:uids AS text[]))"
)


def _explain(conn: Connection, uids: list[str]) -> None:
    before = conn.execute(text(f"EXPLAIN {_IN_LIST.text}"), {"uids": uids}).scalars().all()
    plans = (("IN list (before the fix)", before), ("LATERAL (lookups.py)", explain(conn, uids)))
    for what, plan in plans:
        click.echo(f"-- {what}:")
        for line in plan:
            click.echo(f"   {line[:110]}")


def _lookups(conn: Connection, uids: list[str]) -> tuple[float, float]:
    """Seconds to look every UID up, 900 at a time: the IN list, then lookups.py."""
    times = []
    for lookup in (
        lambda chunk: conn.execute(_IN_LIST, {"uids": chunk}).all(),
        lambda chunk: series_of_sop_instances(conn, chunk),
    ):
        start = time.perf_counter()
        for i in range(0, len(uids), 900):
            assert len(lookup(uids[i : i + 900])) == len(uids[i : i + 900])
        times.append(time.perf_counter() - start)
    return times[0], times[1]


def _readd(store: repository.Store, instances: list[NormalizedInstance]) -> float:
    start = time.perf_counter()
    for i in range(0, len(instances), BATCH):
        result = store.add_normalized(instances[i : i + BATCH])
        assert result.added == 0
    return time.perf_counter() - start


def _measure(engine: Engine, store: repository.Store, instances: list[NormalizedInstance],
             when: str) -> float:  # fmt: skip
    uids = [i.sop_instance_uid for i in instances]
    with engine.connect() as conn:
        click.echo(f"plans {when}:")
        _explain(conn, uids[:900])
        in_list, lateral = _lookups(conn, uids)
    readd = _readd(store, instances)
    click.echo(f"{when}: lookups IN list {in_list:.1f} s, LATERAL {lateral:.1f} s; "
               f"store re-add {readd:.1f} s")  # fmt: skip
    return readd


@click.command()
@click.option("--db", "url", required=True, help="A PostgreSQL database (a new schema is used).")
@click.option("--size", default=50_000, show_default=True, help="Instances to add, then re-add.")
def main(url: str, size: int) -> None:
    """Time re-adding ``size`` known instances before and after ANALYZE."""
    schema = f"readd_{uuid.uuid4().hex[:8]}"
    admin = make_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    scoped = (
        make_url(url)
        .update_query_dict({"options": f"-csearch_path={schema}"})
        .render_as_string(hide_password=False)
    )
    engine = make_engine(scoped)
    migrate.upgrade(engine)
    with engine.begin() as conn:
        for table in ("study", "series_list", "series", "instance", "change"):
            conn.execute(text(f"ALTER TABLE {table} SET (autovacuum_enabled = false)"))
    instances = _instances(size)
    try:
        with repository.connect(scoped) as store:
            start = time.perf_counter()
            for i in range(0, size, BATCH):
                store.add_normalized(instances[i : i + BATCH])
            click.echo(f"first load of {size}: {time.perf_counter() - start:.1f} s")
            fresh = _measure(engine, store, instances, "before ANALYZE")
            with engine.begin() as conn:
                conn.execute(text("ANALYZE"))
            analyzed = _measure(engine, store, instances, "after ANALYZE")
            emit("readd-fresh-db", url, fresh, "s", analyzed, fresh / analyzed, size=size)
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


if __name__ == "__main__":
    main()

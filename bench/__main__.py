"""Benchmarks, run by hand; each prints one JSON line per figure.

    python -m bench all --db sqlite:////tmp/bench/bench.db [--quick]
    python -m bench all --db postgresql://postgres@127.0.0.1/test [--quick]
    python -m bench add-instances --db URL --size 100000

Every line is ``{"bench", "backend", "value", "unit", "baseline", "ratio", ...}`` where the
baseline is measured in the same run on the same data (absolute times vary between machines; the
ratio is what to compare over time). See README.md "Benchmarks" for the targets and figures.
"""

from __future__ import annotations

import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import click
import orjson
import pydicom

import repository
from repository.ingest import ingest
from repository.reading import iter_files, read_file

from . import files, reads, writes
from .common import backend, scratch


def _corpus() -> list[Path]:
    folders = [Path(pydicom.__file__).parent / "data" / "test_files"]
    try:
        import data_store  # pydicom-data

        folders.append(Path(data_store.__file__).parent / "data")
    except ImportError:
        pass
    return list(iter_files(folders))


def _parse(path: Path) -> int:
    try:
        return len(orjson.dumps(read_file(path).metadata))
    except repository.InvalidInputError:
        return 0


QUICK = {"ingest-files": 500, "ingest-large": 50, "add-instances": 20_000,
         "reads": (10_000, 50_000), "memory": 2000}  # fmt: skip
FULL = {"ingest-files": 2000, "ingest-large": 200, "add-instances": 100_000,
        "reads": (10_000, 1_000_000), "memory": 20_000}  # fmt: skip

DB = click.option("--db", "url", required=True, help="Database URL to benchmark against.")
QUICK_FLAG = click.option("--quick", is_flag=True, help="Smaller sizes: minutes, not an hour.")


def _sizes(quick: bool) -> dict[str, Any]:
    return QUICK if quick else FULL


@click.group()
def main() -> None:
    """dicom-repo benchmarks: each prints JSON lines with a same-run baseline and the ratio."""


@main.command("ingest-files")
@DB
@QUICK_FLAG
@click.option("--size", type=int, default=None, help="Small files (default 2000; --quick 500).")
@click.option("--large", type=int, default=None, help="Large files (default 200; --quick 50).")
@click.option("--repeat", default=1, show_default=True, help="Runs of each; the best counts.")
def ingest_files_cmd(
    url: str, quick: bool, size: int | None, large: int | None, repeat: int
) -> None:
    """The dicom-repo ingest process vs pydicom alone (naive loop) in as many processes."""
    files.ingest_files(url, size or _sizes(quick)["ingest-files"], "small", repeat)
    files.ingest_files(url, large or _sizes(quick)["ingest-large"], "large", repeat)


@main.command("add-instances")
@DB
@QUICK_FLAG
@click.option("--size", type=int, default=None, help="Instances (default 100000; --quick 20000).")
def add_instances_cmd(url: str, quick: bool, size: int | None) -> None:
    """Store.add_instances vs the raw driver (COPY / executemany) writing the same rows."""
    writes.run(url, size or _sizes(quick)["add-instances"])


def _reads_command(name: str, doc: str) -> None:
    @main.command(name, help=doc)
    @DB
    @QUICK_FLAG
    @click.option(
        "--size", default=None, help="SMALL,BIG sizes (default 10000,1000000; --quick 10000,50000)."
    )
    def command(url: str, quick: bool, size: str | None) -> None:
        small, big = (int(v) for v in size.split(",")) if size else _sizes(quick)["reads"]
        wanted = {
            "get-series": ("get-series", "get-series-scale"),
            "get-study": ("get-study", "get-study-scale"),
            "display-sets": ("display-sets", "display-sets-scale"),
            "image-id": ("image-id", "image-id-cold"),
        }[name]
        reads.run(url, small, big, only=wanted)


_reads_command("get-series", "A 1000-instance series through the store vs the raw query.")
_reads_command("get-study", "A 3000-instance study through the store vs the raw query.")
_reads_command("display-sets", "Display sets of a 3000-instance study vs get_study.")
_reads_command("image-id", "get_instance_from_image_id p50 in a small vs a big database.")


@main.command("reports")
@DB
@click.option("--size", type=int, default=100_000, show_default=True, help="Instances.")
def reports_cmd(url: str, size: int) -> None:
    """Cookbook reports over the views vs the same question asked of the tables."""
    from . import reports

    reports.run(url, size)


@main.command("memory")
@DB
@QUICK_FLAG
@click.option("--size", type=int, default=None, help="Files (default 20000; --quick 2000).")
def memory_cmd(url: str, quick: bool, size: int | None) -> None:
    """Peak RSS (all processes) of dicom-repo ingest of many files vs a tenth of them."""
    files.memory(url, size or _sizes(quick)["memory"])


@main.command("all")
@DB
@QUICK_FLAG
@click.pass_context
def all_cmd(ctx: click.Context, url: str, quick: bool) -> None:
    """Every benchmark, one after the other."""
    sizes = _sizes(quick)
    files.ingest_files(url, sizes["ingest-files"], "small")
    files.ingest_files(url, sizes["ingest-large"], "large")
    writes.run(url, sizes["add-instances"])
    reads.run(url, *sizes["reads"])
    files.memory(url, sizes["memory"])


@main.command("ingest-corpus")
@click.option("--db", "url", required=True, help="Database URL to benchmark against.")
@click.option("--workers", default=2, show_default=True, help="Parsing processes.")
def ingest_corpus(url: str, workers: int) -> None:
    """File ingest of the bundled test corpus vs parsing alone."""
    files = _corpus()
    start = time.perf_counter()
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(_parse, files, chunksize=16))
    baseline = time.perf_counter() - start

    with scratch(url, "bench_corpus") as scoped, repository.connect(scoped) as store:
        start = time.perf_counter()
        report = ingest(store, files, workers=workers)
        took = time.perf_counter() - start
    print(orjson.dumps({
        "bench": "ingest-corpus", "backend": backend(url), "files": len(files),
        "ingested": report.ingested, "value": round(len(files) / took, 1), "unit": "files/s",
        "baseline": round(len(files) / baseline, 1), "ratio": round(baseline / took, 3),
    }).decode())  # fmt: skip


@main.command("serve")
@DB
@click.option(
    "--size",
    type=int,
    default=100_000,
    show_default=True,
    help="Instances in the database the QIDO-RS search runs over.",
)
@click.option(
    "--orthanc",
    "orthanc_url",
    default=None,
    metavar="URL",
    help="An Orthanc (REST root, DICOMweb plugin at /dicom-web) to compare with.",
)
def serve_cmd(url: str, size: int, orthanc_url: str | None) -> None:
    """dicom-repo serve: WADO-RS metadata, QIDO-RS p50, 2 workers vs 1, Orthanc."""
    from . import serve

    serve.run(url, size, orthanc_url)


@main.command("serve-load")
@DB
@click.option("--instances", default=90, show_default=True, help="CT files in the series.")
@click.option("--seconds", default=10, show_default=True, help="Seconds of load per figure.")
@click.option("--connections", default="16,64", show_default=True, help="Connection counts.")
def serve_load_cmd(url: str, instances: int, seconds: int, connections: str) -> None:
    """dicom-repo serve under load (wrk): QIDO-RS, metadata, frames; req/s, p99, worker RSS."""
    from . import serve_load

    serve_load.run(url, instances, seconds, tuple(int(c) for c in connections.split(",")))


@main.command("replicas")
def replicas_cmd() -> None:
    """Scratch primary + standbys: read throughput via 1 and 2 standbys vs the primary alone,
    standby feed latency, the time a failover costs an ingest (needs root or postgres, wrk)."""
    from . import replicas

    replicas.run()


@main.command("serve-rendered")
@DB
@click.option("--requests", "count", default=100, show_default=True, help="Requests a round.")
def serve_rendered_cmd(url: str, count: int) -> None:
    """dicom-repo serve: rendered 512x512 CT frames per second vs the raw frame endpoint."""
    from . import serve_rendered

    serve_rendered.run(url, count)


@main.command("serve-frames")
@DB
@click.option("--frames", default=400, show_default=True, help="Frames of the large instance.")
@click.option("--requests", "count", default=100, show_default=True, help="Requests a round.")
def serve_frames_cmd(url: str, frames: int, count: int) -> None:
    """dicom-repo serve: frames/s of a large multi-frame instance vs a single-frame one."""
    from . import serve_frames

    serve_frames.run(url, frames, count)


@main.command("writers")
@click.option("--db", "url", required=True, help="Database URL (PostgreSQL) to benchmark.")
@click.option("--counts", default="1,2,4", show_default=True, help="Writer process counts.")
@click.option("--series", default=120, show_default=True, help="Series of 100 instances.")
def writers_cmd(url: str, counts: str, series: int) -> None:
    """Aggregate add_instances throughput of 1, 2 and 4 writer processes vs one."""
    from . import feed

    feed.writers(url, tuple(int(c) for c in counts.split(",")), series)


@main.command("study-summaries")
@click.option("--db", "url", required=True, help="Database URL to benchmark against.")
@click.option("--studies", default=200, show_default=True, help="Studies of 5 series.")
@click.option("--instances", default=40, show_default=True, help="Instances per series.")
def study_summaries_cmd(url: str, studies: int, instances: int) -> None:
    """The study list (one summary query) vs the bare query, and vs get_study per study."""
    from . import summaries

    summaries.run(url, studies, 5, instances)


@main.command("delete-study")
@DB
@click.option("--instances", default=1000, show_default=True, help="Instances in the study.")
@click.option("--rounds", default=5, show_default=True, help="Runs of each (median counts).")
def delete_study_cmd(url: str, instances: int, rounds: int) -> None:
    """Store.delete_study of a 1000-instance study vs DELETE FROM by hand."""
    from . import deletes

    deletes.delete_study(url, instances, rounds)


@main.command("prune")
@DB
@click.option("--studies", default=10_000, show_default=True, help="Old studies to prune.")
def prune_cmd(url: str, studies: int) -> None:
    """retention.prune of 10,000 studies (one transaction each) vs DELETE FROM by hand."""
    from . import deletes

    deletes.prune_studies(url, studies)


@main.command("event-latency")
@click.option("--db", "url", required=True, help="Database URL to benchmark against.")
@click.option("--events", default=200, show_default=True, help="Commits to time.")
def event_latency_cmd(url: str, events: int) -> None:
    """Commit-to-callback latency (p50, p95) for a subscriber in another process."""
    from . import feed

    feed.event_latency(url, events)


def _add_citus() -> None:
    from .citus import citus_cmd

    main.add_command(citus_cmd)


_add_citus()

if __name__ == "__main__":
    main()

"""File benches: ingest-files (vs pydicom alone) and memory (peak RSS of a big ingest)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import orjson
import pydicom

import repository
from repository.ingest import ingest

from .common import emit, scratch, timed
from .corpus import write_files

FILES_ROOT = Path(tempfile.gettempdir()) / "dicom-repo-bench"


def corpus_files(count: int) -> list[Path]:
    """``count`` generated files, kept under the temp folder between runs."""
    folder = FILES_ROOT / f"files-{count}"
    paths = sorted(folder.glob("*.dcm")) if folder.is_dir() else []
    if len(paths) != count:
        print(f"writing {count} files to {folder}", file=sys.stderr)
        for old in paths:
            old.unlink()
        paths = write_files(folder, count, seed=3)
    return paths


def _pydicom_only(path: Path) -> int:
    """What pydicom alone does for a file: parse (large values deferred) and convert to JSON."""
    ds = pydicom.dcmread(path, defer_size=1024)
    as_json = ds.to_json_dict(
        bulk_data_threshold=1024, bulk_data_element_handler=lambda elem: f"file://{path}"
    )
    return len(orjson.dumps(as_json))


def ingest_files(url: str, count: int) -> dict[str, Any]:
    """``ingest`` of ``count`` files with the default workers vs pydicom alone, same processes."""
    files = corpus_files(count)
    workers = os.cpu_count() or 1

    def parse_only() -> None:
        with ProcessPoolExecutor(workers) as pool:
            list(pool.map(_pydicom_only, files, chunksize=64))

    baseline = timed(parse_only)
    with scratch(url, "bench_files") as scoped, repository.connect(scoped) as store:
        report: list[Any] = []
        took = timed(lambda: report.append(ingest(store, files)))
    assert report[0].ingested == count, report[0]
    return emit(
        "ingest-files",
        url,
        count / took,
        "files/s",
        count / baseline,
        baseline / took,
        files=count,
        workers=workers,
    )


def _tree_memory(pid: int) -> tuple[int, int]:
    """(RSS, PSS) bytes of a process and all its descendants, from /proc.

    RSS counts pages the forked workers share with their parent once per process (an upper
    bound); PSS splits shared pages between them (what the tree really holds).
    """
    rss = pss = 0
    stack = [pid]
    while stack:
        current = stack.pop()
        try:
            with open(f"/proc/{current}/smaps_rollup") as rollup:
                for line in rollup:
                    key, _, rest = line.partition(":")
                    if key in ("Rss", "Pss"):
                        kib = int(rest.split()[0]) * 1024
                        rss, pss = (rss + kib, pss) if key == "Rss" else (rss, pss + kib)
            with open(f"/proc/{current}/task/{current}/children") as children:
                stack.extend(int(c) for c in children.read().split())
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue
    return rss, pss


def _peak_memory_of_ingest(url: str, folder: Path) -> tuple[int, int]:
    cli = "from repository.cli import main; main()"
    cmd = [sys.executable, "-c", cli, "--db", url, "ingest", str(folder), "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    peak = [0, 0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            rss, pss = _tree_memory(proc.pid)
            peak[0], peak[1] = max(peak[0], rss), max(peak[1], pss)
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    code = proc.wait()
    done.set()
    sampler.join()
    if code != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited with {code}")
    return peak[0], peak[1]


def memory(url: str, count: int) -> dict[str, Any]:
    """Peak RSS and PSS (process tree) of ingesting ``count`` files vs a tenth of them."""
    files = corpus_files(count)
    small = corpus_files(max(1, count // 10))
    with scratch(url, "bench_mem_small") as scoped:
        baseline, baseline_pss = _peak_memory_of_ingest(scoped, small[0].parent)
    with scratch(url, "bench_mem") as scoped:
        peak, peak_pss = _peak_memory_of_ingest(scoped, files[0].parent)
    mb = 1024 * 1024
    return emit(
        "memory",
        url,
        peak / mb,
        "MB",
        baseline / mb,
        peak / baseline,
        files=count,
        baseline_files=len(small),
        pss_mb=round(peak_pss / mb, 1),
        baseline_pss_mb=round(baseline_pss / mb, 1),
        target_mb=400,
    )

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


def _tree_rss(pid: int) -> int:
    """Resident bytes of a process and all its descendants (from /proc)."""
    total = 0
    stack = [pid]
    while stack:
        current = stack.pop()
        try:
            with open(f"/proc/{current}/statm") as statm:
                total += int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            with open(f"/proc/{current}/task/{current}/children") as children:
                stack.extend(int(c) for c in children.read().split())
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue
    return total


def _peak_rss_of_ingest(url: str, folder: Path) -> int:
    cli = "from repository.cli import main; main()"
    cmd = [sys.executable, "-c", cli, "--db", url, "ingest", str(folder), "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _tree_rss(proc.pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    code = proc.wait()
    done.set()
    sampler.join()
    if code != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited with {code}")
    return peak


def memory(url: str, count: int) -> dict[str, Any]:
    """Peak RSS (process tree) of ingesting ``count`` files vs a tenth of them."""
    files = corpus_files(count)
    small = corpus_files(max(1, count // 10))
    with scratch(url, "bench_mem_small") as scoped:
        baseline = _peak_rss_of_ingest(scoped, small[0].parent)
    with scratch(url, "bench_mem") as scoped:
        peak = _peak_rss_of_ingest(scoped, files[0].parent)
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
        target_mb=400,
    )

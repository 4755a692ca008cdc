"""File benches: ingest-files (vs pydicom alone) and memory (peak RSS of a big ingest)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pydicom
import sqlalchemy as sa

from repository.engine import make_engine
from repository.schema import instance_table

from . import baselines
from .common import emit, scratch, timed
from .corpus import ROOT, write_files

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


ENHANCED = ("eCT_Supplemental.dcm", "emri_small.dcm", "liver.dcm")
"""pydicom-data's enhanced multi-frame files (Enhanced CT, Enhanced MR, Segmentation)."""


def large_files(count: int) -> list[Path]:
    """``count`` copies of pydicom-data's enhanced multi-frame files with fresh UIDs."""
    import data_store  # pydicom-data

    folder = FILES_ROOT / f"large-{count}"
    paths = sorted(folder.glob("*.dcm")) if folder.is_dir() else []
    if len(paths) == count and pydicom.dcmread(paths[-1]).PatientID.startswith("LARGE"):
        return paths
    print(f"writing {count} files to {folder}", file=sys.stderr)
    folder.mkdir(parents=True, exist_ok=True)
    for old in paths:
        old.unlink()
    source = Path(data_store.__file__).parent / "data"
    templates = [pydicom.dcmread(source / name) for name in ENHANCED]
    for n in range(count):
        ds = templates[n % len(templates)]
        study = f"{ROOT}.7.{n // 20}"
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, f"{study}.{n % len(templates)}"
        ds.PatientID, ds.PatientName = f"LARGE{n // 20}", f"Large^{n // 20}"  # one per study
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = f"{study}.1.{n}"
        ds.save_as(folder / f"{n:05d}.dcm")
    return sorted(folder.glob("*.dcm"))


def _cli_ingest(url: str, folder: Path, workers: int) -> None:
    """``dicom-repo --db URL ingest FOLDER`` as its own process, start-up included."""
    script = Path(sys.executable).with_name("dicom-repo")
    run_cli = [sys.executable, "-c", "from repository.cli import run; run()"]
    prefix = [str(script)] if script.exists() else run_cli
    cmd = [*prefix, "--db", url, "ingest", str(folder), "--quiet", "--workers", str(workers)]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def _naive_process(folder: Path, workers: int) -> None:
    """The naive loop as a user runs it: ``python -m bench.baselines FOLDER``, start-up included."""
    cmd = [sys.executable, "-m", "bench.baselines", str(folder), "--workers", str(workers)]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, cwd=Path(__file__).parent.parent)


def _pool(fn: Callable[[Path], int], files: list[Path], workers: int) -> Callable[[], None]:
    def run() -> None:
        with ProcessPoolExecutor(workers) as pool:
            list(pool.map(fn, files, chunksize=16))

    return run


def _count_instances(url: str) -> int:
    engine = make_engine(url)
    with engine.connect() as conn:
        count = conn.execute(sa.select(sa.func.count()).select_from(instance_table)).scalar_one()
    engine.dispose()
    return int(count)


def ingest_files(url: str, count: int, kind: str = "small", repeat: int = 1) -> dict[str, Any]:
    """The ``dicom-repo ingest`` process vs pydicom alone (the naive loop), same processes.

    Both sides run as a user runs them, each its own process with its start-up: the CLI, and
    ``python -m bench.baselines`` (the naive loop over the same folder in as many worker
    processes). The naive loop in a pool of this process (no start-up) and ``to_json_dict`` are
    reported beside them, labelled. ``kind`` is ``small`` (CT_small/MR_small copies) or
    ``large`` (enhanced multi-frame copies). Each figure is the best of ``repeat`` runs,
    alternating, to damp a shared machine.
    """
    files = corpus_files(count) if kind == "small" else large_files(count)
    folder, workers = files[0].parent, os.cpu_count() or 1
    empty = FILES_ROOT / "empty"
    empty.mkdir(parents=True, exist_ok=True)
    times: dict[str, list[float]] = {
        k: [] for k in ("cli", "cli0", "naive", "naive0", "pool", "js")
    }
    for _ in range(repeat):
        times["naive"].append(timed(lambda: _naive_process(folder, workers)))
        times["naive0"].append(timed(lambda: _naive_process(empty, workers)))
        times["pool"].append(timed(_pool(baselines.naive_loop, files, workers)))
        times["js"].append(timed(_pool(baselines.to_json_dict, files, workers)))
        with scratch(url, "bench_files") as scoped:
            times["cli"].append(timed(lambda s=scoped: _cli_ingest(s, folder, workers)))
            stored = _count_instances(scoped)
            assert stored == count, f"{stored} of {count} files stored"
            times["cli0"].append(timed(lambda s=scoped: _cli_ingest(s, empty, workers)))
    best = {k: min(v) for k, v in times.items()}
    return emit(
        f"ingest-files-{kind}",
        url,
        count / best["cli"],
        "files/s",
        count / best["naive"],
        best["naive"] / best["cli"],
        baseline_is="naive pydicom loop as a process (python -m bench.baselines DIR)",
        cli_startup_s=round(best["cli0"], 3),  # each command on an empty folder
        naive_startup_s=round(best["naive0"], 3),
        naive_in_pool=round(count / best["pool"], 1),  # a pool of the bench, no start-up
        ratio_vs_naive_in_pool=round(best["pool"] / best["cli"], 3),
        ratio_without_startup=round(best["pool"] / (best["cli"] - best["cli0"]), 3),
        to_json_dict=round(count / best["js"], 1),
        ratio_vs_to_json_dict=round(best["js"] / best["cli"], 3),
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


def _peak_memory_of_ingest(url: str, folder: Path) -> tuple[int, int, float]:
    cli = "from repository.cli import run; run()"
    cmd = [sys.executable, "-c", cli, "--db", url, "ingest", str(folder), "--quiet"]
    start = time.perf_counter()
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
    took = time.perf_counter() - start
    done.set()
    sampler.join()
    if code != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited with {code}")
    return peak[0], peak[1], took


def memory(url: str, count: int) -> dict[str, Any]:
    """Peak RSS and PSS (process tree) of ingesting ``count`` files vs a tenth of them, and
    the throughput of both runs (files/s, start-up included): flat means it scales."""
    files = corpus_files(count)
    small = corpus_files(max(1, count // 10))
    with scratch(url, "bench_mem_small") as scoped:
        baseline, baseline_pss, small_took = _peak_memory_of_ingest(scoped, small[0].parent)
    with scratch(url, "bench_mem") as scoped:
        peak, peak_pss, took = _peak_memory_of_ingest(scoped, files[0].parent)
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
        files_per_s=round(count / took, 1),
        baseline_files_per_s=round(len(small) / small_took, 1),
        throughput_ratio=round((count / took) / (len(small) / small_took), 3),
    )

"""Faults on real processes: racing openers of a new database, and ``kill -9`` mid-ingest."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dicom_factory import ct_slice, write
from pydicom.uid import generate_uid
from sqlalchemy import text

import repository
from repository.engine import make_engine

CLI = str(Path(sys.executable).parent / "dicom-repo")


def _open_and_read(url: str, results: multiprocessing.Queue[str]) -> None:
    try:
        with repository.connect(url) as store:
            store.get_study_instance_uids()
        results.put("ok")
    except Exception as error:
        results.put(f"{type(error).__name__}: {error}")


@pytest.mark.sqlite
@pytest.mark.parametrize("trial", range(3))
def test_four_processes_creating_one_new_sqlite_file_all_succeed(
    tmp_path: Path, trial: int
) -> None:
    url = f"sqlite:///{tmp_path / 'new.db'}"
    results: multiprocessing.Queue[str] = multiprocessing.Queue()
    processes = [multiprocessing.Process(target=_open_and_read, args=(url, results))
                 for _ in range(4)]  # fmt: skip
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
    assert [results.get(timeout=5) for _ in processes] == ["ok"] * 4


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_an_ingest_killed_mid_run_leaves_no_workers_and_a_rerun_finishes_exactly(
    db_url: str, tmp_path: Path
) -> None:
    series = generate_uid()
    for number in range(1500):
        write(ct_slice(series, number + 1, float(number)), tmp_path / "files")
    command = [CLI, "--db", db_url, "ingest", str(tmp_path / "files"), "--workers", "2", "-q"]
    victim = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while len(_children(victim.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    workers = _children(victim.pid)
    time.sleep(0.5)  # mid-run: some batches committed, others not
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in workers if _alive(pid)], "worker processes outlived the parent"
    rerun = subprocess.run(command, capture_output=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    engine = make_engine(db_url)
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT count(*) FROM instance")).scalar_one()
        seqs = [row[0] for row in conn.execute(text("SELECT seq FROM change ORDER BY seq"))]
    engine.dispose()
    assert stored == 1500
    assert len(seqs) == len(set(seqs))
    with repository.connect(db_url) as store:
        announced = sum(int(e.payload.get("count", 0)) for e in store.changes(limit=10_000)
                        if e.kind == repository.EVENTS.INSTANCES_ADDED)  # fmt: skip
    assert announced == 1500
    assert os.path.exists(tmp_path / "files")

"""Code run in other processes by the concurrency and change-feed tests (spawned, so importable).

Also a few helpers shared by those tests: synthetic instances, a ``dicom-repo changes --follow``
listener process, and waiting for a condition without timing assertions.
"""

from __future__ import annotations

import json
import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

import repository

TIMEOUT = 60.0  # only to avoid hanging: every wait ends as soon as its condition holds


def instance(study: str, series: str, sop: str, **extra: Any) -> dict[str, Any]:
    """A naturalized instance with a few typed attributes."""
    return {"StudyInstanceUID": study, "SeriesInstanceUID": series, "SOPInstanceUID": sop,
            "SOPClassUID": "1.2.840.10008.5.1.4.1.1.2", "Modality": "CT", "PatientID": "P1",
            "InstanceNumber": int(sop.rsplit(".", 1)[1]), "Rows": 2, "Columns": 2,
            **extra}  # fmt: skip


def corpus(studies: int = 3, series: int = 4, instances: int = 25) -> list[dict[str, Any]]:
    """``studies`` x ``series`` x ``instances`` synthetic instances, in UID order."""
    return [
        instance(f"1.2.9.{st}", f"1.2.9.{st}.{se}", f"1.2.9.{st}.{se}.{i}")
        for st in range(1, studies + 1)
        for se in range(1, series + 1)
        for i in range(1, instances + 1)
    ]


def wait_until(condition: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    """Poll ``condition`` until it holds; fail (naming ``what``) only after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.02)


def app_url(url: str, name: str) -> str:
    """``url`` with an application_name on PostgreSQL, to find its sessions."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        return url
    return parsed.update_query_dict({"application_name": name}).render_as_string(
        hide_password=False
    )


def _waits_for_the_change_log_lock(url: str, name: str) -> bool:
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT wait_event FROM pg_stat_activity WHERE application_name = %s "
            "AND state = 'active'", [name]
        ).fetchone()  # fmt: skip
    return row is not None and row[0] == "advisory"


def wait_for_commit_or_wait(writer: threading.Thread, url: str, name: str) -> None:
    """Wait until ``writer`` (a thread writing through ``app_url(url, name)``) has finished or
    is waiting for the change-log lock (PostgreSQL); on SQLite, where it would wait for the
    write lock and cannot be observed doing so, give it a moment."""
    if make_url(url).get_backend_name() == "postgresql":
        wait_until(lambda: not writer.is_alive() or _waits_for_the_change_log_lock(url, name),
                   "writer to commit or to wait for the change-log lock")  # fmt: skip
    else:
        writer.join(0.3)


# ------------------------------------------------------------------------ writer processes


def ingest_share(
    url: str, share: list[dict[str, Any]], seed: int, barrier: Any, results: Any
) -> None:
    """Write ``share`` with add_study, add_series_metadata and add_instances in small batches,
    in a shuffled order, starting together with the other writers; report (added, error)."""
    try:
        rng = random.Random(seed)
        items = list(share)
        rng.shuffle(items)
        with repository.connect(url) as store:
            barrier.wait(TIMEOUT)
            added = 0
            for start in range(0, len(items), 10):
                batch = items[start : start + 10]
                first = batch[0]
                store.add_study({"StudyInstanceUID": first["StudyInstanceUID"],
                                 "PatientID": "P1"})  # fmt: skip
                store.add_series_metadata(
                    [{"StudyInstanceUID": i["StudyInstanceUID"],
                      "SeriesInstanceUID": i["SeriesInstanceUID"], "Modality": "CT"}
                     for i in batch]
                )  # fmt: skip
                added += store.add_instances(batch).added
        results.put((seed, added, None))
    except BaseException:
        results.put((seed, 0, traceback.format_exc()))


def write_script(url: str, steps: list[dict[str, Any]]) -> None:
    """Run write ``steps`` in this process: ``{"add": [instances]}`` commits them,
    ``{"rollback": [instances]}`` adds them in a transaction that is rolled back."""
    with repository.connect(url) as store:
        for step in steps:
            if "add" in step:
                store.add_instances(step["add"])
            else:
                try:
                    with store.transaction():
                        store.add_instances(step["rollback"])
                        raise RuntimeError("roll back")
                except RuntimeError:
                    pass


# ------------------------------------------------------------------------ listener process


class Listener:
    """``dicom-repo changes --follow --json`` in a process of its own, read line by line."""

    def __init__(self, url: str, since: int = 0, poll_interval: float | None = None) -> None:
        args = [str(Path(sys.executable).with_name("dicom-repo")), "--db", url, "changes",
                "--follow", "--json", "--since", str(since)]  # fmt: skip
        if poll_interval is not None:
            args += ["--poll-interval", str(poll_interval)]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=env)  # fmt: skip
        self.events: list[dict[str, Any]] = []
        self._lines: queue.Queue[str] = queue.Queue()
        self._err: list[str] = []
        self._readers = [threading.Thread(target=self._read, daemon=True),
                         threading.Thread(target=self._read_err, daemon=True)]  # fmt: skip
        for reader in self._readers:
            reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._err.append(line)

    @property
    def stderr(self) -> str:
        """What the process wrote to stderr so far (its log)."""
        return "".join(self._err)

    def _drain(self) -> None:
        while True:
            try:
                self.events.append(json.loads(self._lines.get_nowait()))
            except queue.Empty:
                return

    @property
    def seqs(self) -> list[int]:
        """The seqs printed so far."""
        self._drain()
        return [e["seq"] for e in self.events]

    def wait_for_seq(self, seq: int, timeout: float = TIMEOUT) -> None:
        """Wait until the listener has printed ``seq`` (or a later one)."""

        def printed() -> bool:
            seqs = self.seqs
            return (bool(seqs) and seqs[-1] >= seq) or self.proc.poll() is not None

        wait_until(printed, f"the listener to print seq {seq}", timeout)
        assert self.proc.poll() is None, f"listener exited: {self.finish()}"

    def kill(self) -> None:
        """SIGKILL: no chance to clean up, as when a worker crashes."""
        self.proc.kill()
        self.proc.wait(TIMEOUT)
        self._drain()

    def interrupt(self) -> int:
        """Ctrl-C; returns the exit status."""
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(TIMEOUT)

    def finish(self) -> str:
        """Stop the process if running; return its stderr."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(TIMEOUT)
        for reader in self._readers:
            reader.join(TIMEOUT)
        self._drain()
        return self.stderr


def add_in_open_transaction(
    url: str, study: str, sop: str, barrier: Any, mine: Any, peer: Any, results: Any
) -> None:
    """Add ``sop`` under ``study`` in a transaction that, once its add returned, waits (a few
    seconds at most) for the other writer's add to return too before it commits: both probe
    for the SOP Instance UID before either commits. Report ("added" | "conflict" | traceback)."""
    try:
        with repository.connect(url) as store:
            barrier.wait(TIMEOUT)
            try:
                with store.transaction():
                    store.add_instances([instance(study, f"{study}.1", sop)])
                    mine.set()
                    peer.wait(3.0)  # the other writer blocked in its insert never sets it
            except repository.ConflictError as error:
                results.put(("conflict", str(error)))
                return
        results.put(("added", ""))
    except BaseException:
        results.put(("error", traceback.format_exc()))

"""A PostgreSQL cluster of a test's own (initdb in a temporary folder, a free port), to stop and
start at will: the shared test server is never stopped or reconfigured.

PostgreSQL's programs refuse to run as root: when the tests run as root, the cluster is run by
the ``postgres`` user (``runuser``). Without PostgreSQL's programs the tests that need a cluster
are skipped, loudly, unless $CI is set (then they fail).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from orthanc import free_port


def _bin_dir() -> Path | None:
    configured = os.environ.get("DICOM_REPO_TEST_PG_BIN")
    if configured:
        return Path(configured)
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: p.parts)
    if versions:
        return versions[-1].parent
    found = shutil.which("initdb")
    return Path(found).parent if found else None


PG_BIN = _bin_dir()
"""PostgreSQL's programs (initdb, pg_ctl, pg_basebackup): $DICOM_REPO_TEST_PG_BIN, else the
newest /usr/lib/postgresql/*/bin, else the PATH's."""


def run_as_postgres(*command: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``command``, as the ``postgres`` user when the tests run as root (PostgreSQL's
    programs refuse root)."""
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    return subprocess.run([*prefix, *map(str, command)], capture_output=True, text=True,
                          check=check, timeout=120)  # fmt: skip


class ScratchCluster:
    """One PostgreSQL server in a temporary folder; :meth:`stop` and :meth:`start` it freely."""

    def __init__(self) -> None:
        bin_dir = PG_BIN
        if bin_dir is None:
            if os.environ.get("CI"):
                raise RuntimeError("CI is set but PostgreSQL's initdb is not installed")
            pytest.skip("PostgreSQL's initdb is not installed: scratch-cluster tests SKIPPED")
        self.bin = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="dicom-repo-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
                  "--no-sync", "-E", "UTF8")  # fmt: skip

    @property
    def url(self) -> str:
        """The SQLAlchemy URL of its ``postgres`` database."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, program: str, *args: str) -> None:
        done = run_as_postgres(self.bin / program, *args, check=False)
        if done.returncode:
            raise RuntimeError(f"{program} {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories="
                   f"{self.root} -c fsync=off -c max_connections=50")  # fmt: skip
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"),
                  "-o", options, "-w", "-t", "60", "start")  # fmt: skip

    def stop(self) -> None:
        """Stop the server at once (``-m fast``: sessions are ended, as in a restart)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop")

    def remove(self) -> None:
        """Stop the server if it runs, and delete its folder."""
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(RuntimeError):
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

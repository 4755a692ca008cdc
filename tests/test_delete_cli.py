"""``dicom-repo delete`` and ``dicom-repo prune`` as a user runs them, on both backends: the
question asked on a terminal without ``--yes``, the progress bar on a terminal, and every rule
option of ``prune`` (dry run, JSON summary, files of the storage folder)."""

from __future__ import annotations

import datetime as dt
import errno
import os
import pty
import subprocess
import sys
from pathlib import Path

import orjson
from click.testing import CliRunner
from concurrent_workers import TIMEOUT
from test_store import instance

import repository
from repository.cli import main
from repository.normalize import normalize_instance

DICOM_REPO = str(Path(sys.executable).with_name("dicom-repo"))


def _on_terminal(args: list[str], typed: bytes = b"") -> tuple[int, str]:
    """Run ``dicom-repo args`` on a terminal of its own, ``typed`` on its keyboard: its exit
    code and what the terminal showed."""
    primary, secondary = pty.openpty()
    env = {**os.environ, "COLUMNS": "120"}
    with subprocess.Popen(
        [DICOM_REPO, *args], env=env, stdin=secondary, stdout=secondary, stderr=secondary
    ) as proc:
        os.close(secondary)
        os.write(primary, typed)
        shown = b""
        while True:
            try:
                chunk = os.read(primary, 65536)
            except OSError as error:  # EIO: the process closed the terminal
                assert error.errno == errno.EIO
                break
            if not chunk:
                break
            shown += chunk
        code = proc.wait(TIMEOUT)
    os.close(primary)
    return code, shown.decode(errors="replace")


def test_delete_asks_on_a_terminal_and_deletes_only_when_told_yes(db_url: str) -> None:
    with repository.connect(db_url) as store:
        store.add_instances([instance("1.2.5", "1.2.5.1", "1.2.5.1.1")])
    args = ["--db", db_url, "delete", "study", "1.2.5"]
    code, shown = _on_terminal(args, b"n\n")
    assert code == 1 and "Delete study 1.2.5?" in shown and "Aborted" in shown
    with repository.connect(db_url) as store:
        assert store.get_study("1.2.5") is not None
    code, shown = _on_terminal(args, b"y\n")
    assert code == 0 and "deleted 1 series, 1 instances; 1 studies removed" in shown, shown
    with repository.connect(db_url) as store:
        assert store.get_study("1.2.5") is None


def test_prune_shows_a_progress_bar_on_a_terminal(db_url: str) -> None:
    with repository.connect(db_url) as store:
        store.add_instances([instance(f"1.2.{k}", f"1.2.{k}.1", f"1.2.{k}.1.1",
                                      StudyDate="20000101") for k in (1, 2, 3)])  # fmt: skip
    code, shown = _on_terminal(["--db", db_url, "prune", "--older-than", "1y"])
    assert code == 0 and "pruning" in shown and "3/3" in shown, shown
    assert "pruned 3 studies, 3 instances" in shown


def test_prune_options_dry_run_json_and_the_storage_folder(db_url: str, tmp_path: Path) -> None:
    folder = tmp_path / "storage"
    owned = folder / "1.3.1" / "1.3.1.1" / "1.3.1.1.1-0a.dcm"
    owned.parent.mkdir(parents=True)
    owned.write_bytes(b"DICM")
    recent = dt.date.today().strftime("%Y%m%d")
    with repository.connect(db_url) as store:
        ct = normalize_instance(instance("1.3.1", "1.3.1.1", "1.3.1.1.1", StudyDate="20100101"),
                                source="t")  # fmt: skip
        store.add_normalized([ct], paths={"1.3.1.1.1": str(owned)})
        store.add_instances([
            instance("1.3.2", "1.3.2.1", "1.3.2.1.1", StudyDate="20100101", Modality="MR"),
            instance("1.3.3", "1.3.3.1", "1.3.3.1.1", StudyDate=recent),
        ])  # fmt: skip
        store.add_instances([instance("1.3.4", "1.3.4.1", "1.3.4.1.1", StudyDate="20100101")],
                            data_source="pacs")  # fmt: skip
    runner, db = CliRunner(), ["--db", db_url, "prune"]

    def pruned(*options: str) -> dict[str, object]:
        done = runner.invoke(main, [*db, *options, "--json"])
        assert done.exit_code == 0, done.output
        return dict(orjson.loads(done.stdout))

    dry = pruned("--older-than", "1y", "--dry-run")
    assert dry["dry_run"] is True and dry["study_uids"] == ["1.3.1", "1.3.2", "1.3.4"]
    assert pruned("--older-than", "1y", "--modality", "MR", "--dry-run")["study_uids"] == ["1.3.2"]
    tomorrow = (dt.date.today() + dt.timedelta(days=1)).isoformat()
    assert pruned("--received-before", tomorrow, "--data-source", "pacs", "--dry-run")[
        "study_uids"] == ["1.3.4"]  # fmt: skip
    assert pruned("--received-before", "2000-01-01", "--dry-run")["study_uids"] == []
    with repository.connect(db_url) as store:
        assert store.get_study_instance_uids() == ["1.3.1", "1.3.2", "1.3.3", "1.3.4"]
    done = pruned("--older-than", "365d", "--modality", "CT", "--data-source", "default",
                  "--storage", str(folder))  # fmt: skip
    assert (done["study_uids"], done["instances"], done["files"]) == (["1.3.1"], 1, 1)
    assert not owned.exists() and not owned.parent.exists()
    with repository.connect(db_url) as store:
        assert store.get_study_instance_uids() == ["1.3.2", "1.3.3", "1.3.4"]
    refused = runner.invoke(main, [*db, "--older-than", "soon"])
    assert refused.exit_code == 2 and "give days as N, Nd, Nw or Ny" in refused.output

"""The built wheel works on its own: it ships the migrations and migrates without the checkout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path
from typing import Any

import pytest

from repository import migrate
from repository.engine import make_engine

CHECKOUT = Path(__file__).resolve().parent.parent

# Run inside the subprocess before anything else: drop the checkout from sys.path (the editable
# install's .pth puts it there), so that only the unzipped wheel can provide `repository`.
PRELUDE = f"""
import json, sys
from pathlib import Path
CHECKOUT = Path({str(CHECKOUT)!r})
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != CHECKOUT]
import repository
from repository import migrate
from repository.engine import make_engine

def loaded_from_checkout():
    bad = []
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if path and Path(path).resolve().is_relative_to(CHECKOUT) and (
            not Path(path).resolve().is_relative_to(CHECKOUT / ".venv")
        ):
            bad.append(f"{{name}}: {{path}}")
    return bad
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from this checkout with pip (hatchling backend, no isolation)."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(out), str(CHECKOUT)],
        check=True, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    [built] = out.glob("dicom_repo-*.whl")
    return built


@pytest.fixture(scope="module")
def unzipped(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel's contents, as an installer would lay them out in site-packages."""
    target = tmp_path_factory.mktemp("site")
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(target)
    return target


def run_python(code: str, site: Path, cwd: Path) -> dict[str, Any]:
    """Run ``code`` (after PRELUDE) with only the unzipped wheel providing ``repository``.

    The code prints one JSON object as its last line; that object is returned.
    """
    env = {**os.environ, "PYTHONPATH": str(site), "PYTHONSAFEPATH": "1"}
    env.pop("DICOM_REPO_URL", None)
    done = subprocess.run(
        [sys.executable, "-c", PRELUDE + textwrap.dedent(code)],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_the_wheel_ships_the_migrations_inside_the_package(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert "repository/_migrations/env.py" in names
    assert "repository/_migrations/script.py.mako" in names
    versions = "repository/_migrations/versions/"
    shipped = {n.removeprefix(versions) for n in names if n.startswith(versions)}
    in_checkout = {p.name for p in (CHECKOUT / "migrations" / "versions").glob("*.py")}
    assert shipped == in_checkout
    assert in_checkout, "no migration scripts in the checkout"
    assert "repository/__init__.py" in names and "repository/cli/__init__.py" in names
    assert not any(n.startswith(("tests/", "migrations/")) for n in names)


def test_the_wheel_declares_the_dicom_repo_command(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        [entry_points] = [n for n in archive.namelist() if n.endswith("/entry_points.txt")]
        text = archive.read(entry_points).decode()
    assert "dicom-repo = repository.cli:run" in text


def test_the_unzipped_wheel_migrates_sqlite_without_the_checkout(
    unzipped: Path, tmp_path: Path
) -> None:
    db = tmp_path / "w.db"
    result = run_python(
        f"""
        url = {f"sqlite:///{db}"!r}
        engine = make_engine(url)
        migrate.upgrade(engine)
        print(json.dumps({{
            "file": repository.__file__,
            "migrations": str(migrate.migrations_dir()),
            "current": migrate.current_revision(engine),
            "head": migrate.head_revision(),
            "differences": [str(d) for d in migrate.model_differences(engine)],
            "from_checkout": loaded_from_checkout(),
        }}))
        engine.dispose()
        """,
        unzipped,
        cwd=tmp_path,
    )
    assert Path(result["file"]).resolve().is_relative_to(unzipped.resolve())
    assert Path(result["migrations"]).resolve() == (unzipped / "repository/_migrations").resolve()
    assert result["current"] == result["head"] == migrate.head_revision()
    assert result["differences"] == []
    assert result["from_checkout"] == []

    engine = make_engine(f"sqlite:///{db}")  # and the checkout agrees it is at head
    try:
        assert migrate.current_revision(engine) == migrate.head_revision()
    finally:
        engine.dispose()


def test_the_unzipped_wheels_cli_upgrades_an_empty_database(
    unzipped: Path, empty_db_url: str, tmp_path: Path
) -> None:
    result = run_python(
        f"""
        from repository.cli import main
        url = {empty_db_url!r}
        main(["--db", url, "db", "upgrade"], standalone_mode=False)
        main(["--db", url, "db", "check"], standalone_mode=False)
        engine = make_engine(url)
        print(json.dumps({{
            "file": repository.__file__,
            "current": migrate.current_revision(engine),
            "from_checkout": loaded_from_checkout(),
        }}))
        engine.dispose()
        """,
        unzipped,
        cwd=tmp_path,
    )
    assert Path(result["file"]).resolve().is_relative_to(unzipped.resolve())
    assert result["current"] == migrate.head_revision()
    assert result["from_checkout"] == []

    engine = make_engine(empty_db_url)
    try:
        assert migrate.current_revision(engine) == migrate.head_revision()
        assert migrate.model_differences(engine) == []
    finally:
        engine.dispose()

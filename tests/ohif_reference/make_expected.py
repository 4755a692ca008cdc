"""Regenerate ``expected.json``: what OHIF 3.13.2's own code makes of the test corpus (run by hand).

    npm pack @ohif/app@3.13.2 && tar xzf ohif-app-3.13.2.tgz        # the built viewer
    .venv/bin/python tests/ohif_reference/make_expected.py package/dist

Ingests pydicom's and pydicom-data's test files and the synthetic series of
``tests/ohif_synthetic.py`` into a scratch SQLite store, hands every study's
naturalized instances to ``ohif_display_sets.js`` (OHIF's DisplaySetService and handlers, cut out
of the bundle and run under Node 20), and writes OHIF's display sets, summarized, to
``expected.json``. Only that summary is committed, never OHIF's code.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import ohif_corpus  # noqa: E402

import repository  # noqa: E402
from repository.ingest import ingest  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ohif_dist", type=Path, help="dist/ of npm pack @ohif/app@3.13.2")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        store = repository.connect(f"sqlite:///{scratch}/corpus.db")
        uids = ohif_corpus.ingest_corpus(store, Path(scratch))
        studies = [store.get_study(uid) for uid in uids]
        _write(_run_ohif(args.ohif_dist, studies, Path(scratch)), ohif_corpus.EXPECTED)
        alone = []
        for name in ohif_corpus.ALONE:  # each file in a store of its own
            single = repository.connect(f"sqlite:///{scratch}/{name}.db")
            ingest(single, [ohif_corpus.alone_path(name)], workers=1)
            alone += [single.get_study(uid) for uid in single.get_study_instance_uids()]
        _write(_run_ohif(args.ohif_dist, alone, Path(scratch)), ohif_corpus.EXPECTED_ALONE)


def _run_ohif(dist: Path, studies: list[Any], scratch: Path) -> dict[str, Any]:
    payload = {"studies": [ohif_corpus.ohif_input(s) for s in studies if s is not None]}
    request = scratch / "input.json"
    request.write_text(json.dumps(payload))
    result = subprocess.run(
        ["node", str(HERE / "ohif_display_sets.js"), str(dist), str(request)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    ohif: dict[str, Any] = json.loads(result.stdout)
    ohif["studies"].sort(key=lambda s: s["StudyInstanceUID"])
    return ohif


def _write(ohif: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(ohif, indent=1, sort_keys=True) + "\n")
    count = sum(len(s["displaySets"]) for s in ohif["studies"])
    print(f"{len(ohif['studies'])} studies, {count} display sets -> {path}")


if __name__ == "__main__":
    main()

"""Writing and registering SOP class handlers: v3 and the seed's v2 form, order, declining,
entry-point plug-ins, invalid handlers, deterministic ids and a fixed number of queries."""

from __future__ import annotations

import dataclasses
import json
import logging
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from dicom_factory import STUDY, ct_slice, sr_3d, write
from pydicom import dcmread, uid
from pydicom.uid import generate_uid
from sqlalchemy import event

import repository
from repository import Store
from repository.cli import main
from repository.models import Instance
from repository.sop_class_handlers import (
    ENTRY_POINT_GROUP,
    DisplaySet,
    HandlerContext,
    HandlerRegistry,
    InvalidHandlerError,
    SopClassHandler,
)

BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"
ENHANCED_SR = "1.2.840.10008.5.1.4.1.1.88.22"


def ct_series(store: Store, folder: Path, n: int = 4) -> str:
    series = generate_uid()
    paths = [write(ct_slice(series, i, float(i)), folder) for i in range(1, n + 1)]
    store.add_instances([dcmread(p) for p in paths])
    return series


def odd_only(instances: Sequence[Instance], context: HandlerContext) -> list[DisplaySet]:
    """A handler that takes odd-numbered images and declines the others."""
    odd = [i for i in instances if (i.instance_number or 0) % 2]
    return [context.display_set(odd, plugin="odd-viewer")] if odd else []


ODD = SopClassHandler("odd", [uid.CTImageStorage], odd_only)


def test_handlers_are_offered_instances_in_order_and_declined_ones_go_on(
    store: Store, tmp_path: Path
) -> None:
    ct_series(store, tmp_path)
    first, second = store.get_display_sets(STUDY, handlers=[ODD, "stack"])
    assert first.sop_class_handler_id == "odd" and first.plugin == "odd-viewer"
    assert [i.instance_number for i in first.instances] == [1, 3]
    assert second.sop_class_handler_id == "stack"
    assert sorted(i.instance_number or 0 for i in second.instances) == [2, 4]
    # the other order: the stack takes everything, the odd handler is never asked
    [stack] = store.get_display_sets(STUDY, handlers=["stack", ODD])
    assert stack.sop_class_handler_id == "stack" and len(stack.instances) == 4


def test_declined_by_every_handler_is_unsupported_with_the_reason(
    store: Store, tmp_path: Path
) -> None:
    ct_series(store, tmp_path, n=2)
    never = SopClassHandler("never", [uid.CTImageStorage], lambda instances, context: [])
    [ds] = store.get_display_sets(STUDY, handlers=[never])
    assert ds.is_unsupported
    assert ds.extras["reason"] == (
        f"SOP class {uid.CTImageStorage} (CT Image Storage) was declined by 'never'"
    )


def test_a_failing_handler_is_logged_and_its_instances_go_on(
    store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ct_series(store, tmp_path, n=2)

    def broken(instances: Sequence[Instance], context: HandlerContext) -> list[DisplaySet]:
        raise RuntimeError("plug-in bug")

    def stray(instances: Sequence[Instance], context: HandlerContext) -> list[DisplaySet]:
        other = dataclasses.replace(instances[0], sop_instance_uid="9.9.9")
        return [context.display_set([other], plugin="x")]

    handlers = [SopClassHandler("broken", [uid.CTImageStorage], broken),
                SopClassHandler("stray", [uid.CTImageStorage], stray), "stack"]  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="repository.sop_class_handlers"):
        [ds] = store.get_display_sets(STUDY, handlers=handlers)
    assert ds.sop_class_handler_id == "stack" and len(ds.instances) == 2
    assert "handler 'broken'" in caplog.text and "plug-in bug" in caplog.text
    assert "handler 'stray'" in caplog.text and "not offered" in caplog.text


# ----------------------------------------------------------------------------- the seed's v2 form

SOP_CLASS_UIDS = {"BASIC_TEXT_SR": BASIC_TEXT_SR, "ENHANCED_SR": ENHANCED_SR}


def get_sop_class_handler_module(**services: Any) -> dict[str, Any]:
    """The seed's example handler module, written in Python as its reader would."""

    def get_display_set_from_series(
        series: Any, study: Any, dicom_web_client: Any, authorization_headers: Any
    ) -> dict[str, Any]:
        instance = series.instances[0]
        return {
            "plugin": "html",
            "displaySetInstanceUid": 0,
            "wadoRoot": study.series_lists[0].wado_root,
            "wadoUri": instance.wado_uri,
            "sopInstanceUid": instance.sop_instance_uid,
            "seriesInstanceUid": series.series_instance_uid,
            "studyInstanceUid": study.study_instance_uid,
            "authorizationHeaders": authorization_headers,
            "reportTitle": "Example",
        }

    return {
        "id": "OHIFDicomHtmlSopClassHandler",
        "sopClassUids": list(SOP_CLASS_UIDS.values()),
        "getDisplaySetFromSeries": get_display_set_from_series,
    }


def test_the_seeds_v2_example_handler_works(store: Store, tmp_path: Path) -> None:
    series = generate_uid()
    reports = [sr_3d(series, "1.2.3", number=n) for n in (1, 2)]
    for ds in reports:
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = ENHANCED_SR
    store.add_instances([dcmread(write(ds, tmp_path)) for ds in reports],
                        wado_root="https://pacs.example/dicom-web")  # fmt: skip
    module = get_sop_class_handler_module()
    [ds] = store.get_display_sets(
        STUDY, handlers=[module], authorization_headers={"Authorization": "Basic x"}
    )
    assert ds.sop_class_handler_id == "OHIFDicomHtmlSopClassHandler" and ds.plugin == "html"
    assert ds.display_set_instance_uid.startswith("2.25.")  # the seed's 0 is replaced
    assert ds.sop_instance_uid == reports[0].SOPInstanceUID
    assert ds.wado_root == "https://pacs.example/dicom-web"
    assert ds.authorization_headers == {"Authorization": "Basic x"}
    assert len(ds.instances) == 2  # a v2 display set covers the series
    assert ds.extras == {"report_title": "Example"}
    # the same module registered alongside the built-ins takes SRs before the built-in "sr"
    store.handlers.register(module, before="sr")
    [again] = store.get_display_sets(STUDY)
    assert again.sop_class_handler_id == "OHIFDicomHtmlSopClassHandler"
    assert again.display_set_instance_uid == ds.display_set_instance_uid


def test_a_v2_handler_returning_none_declines(store: Store, tmp_path: Path) -> None:
    ct_series(store, tmp_path, n=2)
    nothing = {
        "id": "nothing",
        "sop_class_uids": [uid.CTImageStorage],
        "get_display_set_from_series": lambda series, study, client, headers: None,
    }
    [ds] = store.get_display_sets(STUDY, handlers=[nothing, "stack"])
    assert ds.sop_class_handler_id == "stack"


# ----------------------------------------------------------------------------- registration


@pytest.mark.parametrize(
    ("handler", "message"),
    [
        (object(), "has neither"),
        ({"id": "", "sop_class_uids": ["1.2"], "get_display_sets_from_series": odd_only},
         "non-empty string id"),
        ({"id": "x", "sop_class_uids": ["1.2.abc"], "get_display_sets_from_series": odd_only},
         "'1.2.abc' is not a valid UID"),
        ({"id": "x", "sop_class_uids": "1.2.3", "get_display_sets_from_series": odd_only},
         "must be a list of UIDs"),
        ({"id": "x", "sop_class_uids": [], "get_display_sets_from_series": odd_only},
         "claims no SOP class UIDs"),
        ({"id": "x", "get_display_sets_from_series": odd_only}, "has no sop_class_uids"),
        ({"id": "x", "sop_class_uids": ["1.2"], "get_display_sets_from_series": 3},
         "not callable"),
    ],
)  # fmt: skip
def test_invalid_handlers_are_clear_errors(handler: Any, message: str) -> None:
    with pytest.raises(InvalidHandlerError, match=message):
        HandlerRegistry([handler])


def test_duplicate_ids_and_unknown_ids_are_clear_errors(store: Store) -> None:
    with pytest.raises(InvalidHandlerError, match="'stack' is already registered"):
        store.handlers.register(SopClassHandler("stack", ["1.2"], odd_only))
    with pytest.raises(InvalidHandlerError, match="no SOP class handler with id 'nope'"):
        store.get_display_sets(STUDY, handlers=["nope"])
    with pytest.raises(InvalidHandlerError, match="listed twice"):
        store.get_display_sets(STUDY, handlers=["stack", "stack"])


def test_builtin_order_is_ohifs_basic_viewer_order(store: Store) -> None:
    # modes/basic/src/index.tsx sopClassHandlers (used by @ohif/mode-longitudinal), then ours
    assert store.handlers.ids == [
        "video", "ecg", "seg", "parametric-map", "stack", "whole-slide-microscopy", "pdf",
        "sr-3d", "sr", "rtstruct", "key-object-selection", "presentation-state",
    ]  # fmt: skip


PLUGIN_MODULE = """
from repository.sop_class_handlers import SopClassHandler

def _sets(instances, context):
    return [context.display_set(instances, plugin="plugin-viewer", extras={"from": "plugin"})]

def get_sop_class_handler_module():
    return [SopClassHandler("plugin-ct", ["1.2.840.10008.5.1.4.1.1.2"], _sets)]
"""


def install_plugin(root: Path, module: str, entry: str) -> None:
    """A distribution on sys.path with an entry point, as `pip install` leaves it."""
    info = root / "dicom_test_plugin-1.0.dist-info"
    info.mkdir(parents=True)
    (root / "dicom_test_plugin.py").write_text(textwrap.dedent(module))
    sys.modules.pop("dicom_test_plugin", None)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: dicom-test-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{entry}\n")


def test_a_plugin_registered_through_an_entry_point_is_used(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_plugin(tmp_path / "site", PLUGIN_MODULE,
                   "ct = dicom_test_plugin:get_sop_class_handler_module")  # fmt: skip
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    with repository.connect(db_url) as store:
        ct_series(store, tmp_path / "files", n=2)
        assert store.handlers.ids[0] == "plugin-ct"
        [ds] = store.get_display_sets(STUDY)
        assert (ds.sop_class_handler_id, ds.plugin) == ("plugin-ct", "plugin-viewer")
        assert ds.extras == {"from": "plugin"}


def test_a_broken_entry_point_is_a_clear_error(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_plugin(tmp_path / "site", "X = 1\n", "bad = dicom_test_plugin:MISSING")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    with (
        repository.connect(db_url) as store,
        pytest.raises(InvalidHandlerError, match="cannot load entry point 'bad'"),
    ):
        store.get_display_sets(STUDY)


# ----------------------------------------------------------------------------- ids and queries


def test_display_set_ids_are_the_same_in_another_process(
    store: Store, db_url: str, tmp_path: Path
) -> None:
    ct_series(store, tmp_path)
    sr_series = generate_uid()
    store.add_instances([dcmread(write(sr_3d(sr_series, "1.2.3"), tmp_path))])
    here = [ds.display_set_instance_uid for ds in store.get_display_sets(STUDY)]
    script = (
        "import json, sys, repository\n"
        "store = repository.connect(sys.argv[1])\n"
        "sets = store.get_display_sets(sys.argv[2])\n"
        "print(json.dumps([d.display_set_instance_uid for d in sets]))"
    )
    out = subprocess.run([sys.executable, "-c", script, db_url, STUDY],
                         capture_output=True, text=True, check=True)  # fmt: skip
    assert json.loads(out.stdout) == here
    assert len(set(here)) == 2 and all(len(u) <= 64 for u in here)


def count_statements(store: Store, study: str) -> int:
    statements: list[str] = []

    def before(*args: Any) -> None:
        statements.append(args[2])

    store.get_display_sets(study)  # warm up: connection set-up is not part of the count
    event.listen(store.engine, "before_cursor_execute", before)
    try:
        store.get_display_sets(study)
    finally:
        event.remove(store.engine, "before_cursor_execute", before)
    return sum(1 for s in statements if s.lstrip().upper().startswith("SELECT"))


def test_the_number_of_queries_does_not_grow_with_the_instances(
    store: Store, tmp_path: Path
) -> None:
    small = generate_uid()
    big = generate_uid()
    paths = [write(ct_slice(small, n, float(n), study=small), tmp_path) for n in (1, 2)]
    paths += [write(ct_slice(big, n, float(n), study=big), tmp_path) for n in range(1, 61)]
    paths += [write(sr_3d(generate_uid(), big, study=big), tmp_path)]
    store.add_instances([dcmread(p) for p in paths])
    few, many = count_statements(store, small), count_statements(store, big)
    assert few == many == 4  # study, series lists, instances, series


# ----------------------------------------------------------------------------- CLI


def test_cli_display_sets_table_and_json(db_url: str, tmp_path: Path) -> None:
    with repository.connect(db_url) as store:
        series = ct_series(store, tmp_path, n=3)
    runner = CliRunner()
    table = runner.invoke(main, ["--db", db_url, "display-sets", STUDY])
    assert table.exit_code == 0, table.output
    assert "stack" in table.output and "cornerstone" in table.output and "volume" in table.output
    out = runner.invoke(main, ["--db", db_url, "display-sets", STUDY, "--json"])
    [ds] = json.loads(out.output)
    assert ds["series_instance_uid"] == series and ds["is_reconstructable"] is True
    assert len(ds["instances"]) == 3 and ds["instances"][0]["image_id"].startswith("dicomfile:")
    missing = runner.invoke(main, ["--db", db_url, "display-sets", "1.2.3"])
    assert missing.exit_code == 1 and "study 1.2.3 is not in the store" in missing.output
    bad = runner.invoke(main, ["--db", db_url, "display-sets", STUDY, "--handler", "nope"])
    assert bad.exit_code == 1 and "no SOP class handler with id 'nope'" in bad.output

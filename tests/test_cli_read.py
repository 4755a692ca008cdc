"""The ``dicom-repo`` command line on both databases: every read, missing UIDs, help."""

from __future__ import annotations

import json

import click
import pydicom
import pytest
from cli_fixtures import CT, LONG_UIDS, MR, RTDOSE, run
from click.testing import CliRunner

import repository
from repository.cli import main

pytest_plugins = ("cli_fixtures",)

# --------------------------------------------------------------------------------------- reads


def test_study_shows_the_patient_and_its_series(ingested: str) -> None:
    result = run(ingested, "study", CT.study)
    assert result.exit_code == 0, result.output
    assert f"Study {CT.study}" in result.output
    assert CT.patient_name in result.output
    assert CT.series in result.output.split()
    assert "default" in result.output


def test_study_json_holds_the_patient_series_and_metadata(ingested: str) -> None:
    result = run(ingested, "study", LONG_UIDS.study, "--json")
    assert result.exit_code == 0, result.output
    study = json.loads(result.output)
    assert study["study_instance_uid"] == LONG_UIDS.study
    assert study["patient_name"] == LONG_UIDS.patient_name
    assert study["metadata"]["PatientName"] == {"Alphabetic": LONG_UIDS.patient_name}
    [series] = study["series_lists"][0]["series"]
    assert series["series_instance_uid"] == LONG_UIDS.series
    assert series["number_of_instances"] == 1


def test_series_lists_its_instances_with_full_sop_uids(ingested: str) -> None:
    result = run(ingested, "series", RTDOSE.study, RTDOSE.series)
    assert result.exit_code == 0, result.output
    assert f"Series {RTDOSE.series}" in result.output
    assert "RTDOSE" in result.output
    words = result.output.split()
    assert RTDOSE.sop in words
    assert str(RTDOSE.frames) in words
    assert f"dicomfile:{RTDOSE.path}" in words


def test_series_json_holds_its_instances(ingested: str) -> None:
    result = run(ingested, "series", MR.study, MR.series, "--json")
    assert result.exit_code == 0, result.output
    series = json.loads(result.output)
    assert series["series_instance_uid"] == MR.series
    assert series["modality"] == "MR"
    assert series["number_of_instances"] == 1
    [inst] = series["instances"]
    assert inst["sop_instance_uid"] == MR.sop
    assert (inst["rows"], inst["columns"]) == (MR.rows, MR.columns)
    assert inst["image_id"] == f"dicomfile:{MR.path}"


def test_instance_shows_typed_columns_and_metadata(ingested: str) -> None:
    result = run(ingested, "instance", CT.study, CT.series, CT.sop)
    assert result.exit_code == 0, result.output
    rows = [line.split() for line in result.output.splitlines() if line.strip()]
    lines = {words[0]: words[1:] for words in rows}
    assert lines["sop_instance_uid"] == [CT.sop]
    assert lines["rows"] == [str(CT.rows)] and lines["columns"] == [str(CT.columns)]
    assert lines["PatientName"] == ['{"Alphabetic":"CompressedSamples^CT1"}']
    assert lines["Modality"] == ["CT"]


def test_instance_json_has_full_metadata(ingested: str) -> None:
    result = run(ingested, "instance", CT.study, CT.series, CT.sop, "--json")
    assert result.exit_code == 0, result.output
    inst = json.loads(result.output)
    assert inst["sop_instance_uid"] == CT.sop
    assert (inst["rows"], inst["columns"]) == (CT.rows, CT.columns)
    assert inst["data_source"] == "default"
    md = inst["metadata"]
    assert md["Rows"] == CT.rows
    assert md["PatientName"] == {"Alphabetic": CT.patient_name}
    assert md["SOPInstanceUID"] == CT.sop
    assert set(md["PixelData"]) == {"BulkDataURI"}


@pytest.mark.parametrize("suffix", ["", "&frame=2", "?frame=2"])
def test_image_id_finds_the_instance_of_a_file_image_id(ingested: str, suffix: str) -> None:
    image_id = f"dicomfile:{RTDOSE.path}{suffix}"
    table = run(ingested, "image-id", image_id)
    assert table.exit_code == 0, table.output
    assert RTDOSE.sop in table.output.split()

    as_json = run(ingested, "image-id", image_id, "--json")
    assert as_json.exit_code == 0, as_json.output
    inst = json.loads(as_json.output)
    assert inst["sop_instance_uid"] == RTDOSE.sop
    assert inst["number_of_frames"] == RTDOSE.frames
    assert inst["rows"] == RTDOSE.rows
    assert inst["metadata"]["Modality"] == "RTDOSE"


@pytest.mark.parametrize("frame", ["1", "3", "15"])
def test_image_id_finds_the_instance_of_a_wadors_frame_image_id(db_url: str, frame: str) -> None:
    ds = pydicom.dcmread(RTDOSE.path)
    dicom_json = ds.to_json_dict(bulk_data_element_handler=lambda e: "http://pacs/bulk")
    with repository.connect(db_url) as store:
        store.add_instances([dicom_json], data_source="pacs", wado_root="http://pacs/dicom-web")
    image_id = (
        f"wadors:http://pacs/dicom-web/studies/{RTDOSE.study}/series/{RTDOSE.series}"
        f"/instances/{RTDOSE.sop}/frames/{frame}"
    )
    table = run(db_url, "image-id", image_id)
    assert table.exit_code == 0, table.output
    assert RTDOSE.sop in table.output.split()

    inst = json.loads(run(db_url, "image-id", image_id, "--json").output)
    assert inst["sop_instance_uid"] == RTDOSE.sop
    assert inst["data_source"] == "pacs"
    assert inst["image_id"].endswith("/frames/1")
    assert inst["rows"] == RTDOSE.rows


# ------------------------------------------------------------------------------------- missing


def test_a_missing_study_exits_non_zero_naming_it(ingested: str) -> None:
    for args in (["study", "1.2.3.999"], ["study", "1.2.3.999", "--json"]):
        result = run(ingested, *args)
        assert result.exit_code == 1
        assert "1.2.3.999" in result.output
        assert "not in the store" in result.output


def test_a_missing_series_exits_non_zero_naming_it(ingested: str) -> None:
    result = run(ingested, "series", CT.study, "1.2.3.998")
    assert result.exit_code == 1
    assert "1.2.3.998" in result.output and "not in the store" in result.output
    other = run(ingested, "series", CT.study, CT.series, "--data-source", "nope")
    assert other.exit_code == 1
    assert CT.series in other.output


def test_a_missing_instance_exits_non_zero_naming_it(ingested: str) -> None:
    result = run(ingested, "instance", CT.study, CT.series, "1.2.3.997")
    assert result.exit_code == 1
    assert "1.2.3.997" in result.output and "not in the store" in result.output
    in_wrong_series = run(ingested, "instance", CT.study, MR.series, CT.sop, "--json")
    assert in_wrong_series.exit_code == 1
    assert CT.sop in in_wrong_series.output


def test_an_unknown_image_id_exits_non_zero_naming_it(ingested: str) -> None:
    unknown = "dicomfile:/no/such/file.dcm&frame=2"
    result = run(ingested, "image-id", unknown)
    assert result.exit_code == 1
    assert f"no instance has imageId {unknown}" in result.output


# ---------------------------------------------------------------------------------------- help


def _walk(command: click.Command, path: str = "dicom-repo") -> list[tuple[str, click.Command]]:
    found = [(path, command)]
    if isinstance(command, click.Group):
        ctx = click.Context(command)
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            assert sub is not None, f"{path} {name}"
            found += _walk(sub, f"{path} {name}")
    return found


def test_every_command_and_option_has_help_text() -> None:
    commands = _walk(main)
    assert {path for path, _ in commands} >= {
        "dicom-repo", "dicom-repo db", "dicom-repo db upgrade", "dicom-repo db downgrade",
        "dicom-repo db current", "dicom-repo db check", "dicom-repo ingest",
        "dicom-repo studies", "dicom-repo study", "dicom-repo series", "dicom-repo instance",
        "dicom-repo image-id",
    }  # fmt: skip
    missing = []
    for path, command in commands:
        if not (command.help or "").strip():
            missing.append(path)
        for param in command.params:
            if not isinstance(param, click.Option) or param.name in ("help", "version"):
                continue
            if not (param.help or "").strip():
                missing.append(f"{path} {param.opts[0]}")
    assert missing == []


def test_help_of_every_command_renders() -> None:
    for path, _ in _walk(main):
        words = path.split()[1:]
        result = CliRunner().invoke(main, [*words, "--help"], catch_exceptions=False)
        assert result.exit_code == 0, path
        assert "Usage:" in result.output


def test_every_command_of_the_command_table_is_listed_under_its_own_name() -> None:
    from repository.cli import COMMANDS, LazyGroup, load_command

    assert {name: load_command(spec).name for name, spec in COMMANDS.items()} == {
        name: name for name in COMMANDS
    }
    assert main.list_commands(click.Context(main)) == sorted(COMMANDS)
    with pytest.raises(TypeError, match="not a click command"):
        load_command("repository.cli._shared:print_json")
    misnamed = LazyGroup(lazy_commands={"load": "repository.cli.ingest:ingest"})
    with pytest.raises(TypeError, match="the command 'ingest', not 'load'"):
        misnamed.get_command(click.Context(misnamed), "load")

"""``dicom-repo ingest``: file DICOM files and folders into the store."""

from __future__ import annotations

import sys

import click

from ..ingest import IngestReport, write_results
from ..reading import iter_files, read_files, sample_files
from ._shared import counting_bar, open_store, quiet_option

KEEP_JSON_DEFAULT = False
"""Whether ``ingest`` keeps DICOM JSON unless told (chosen from the figures in the README)."""


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(exists=True))
@click.option("--sample", is_flag=True, help="Ingest the DICOM test files bundled with pydicom.")
@click.option(
    "--data-source", default="default", show_default=True, help="Series list to file them under."
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Parsing processes (default: one per CPU).",
)
@click.option(
    "--keep-json/--no-keep-json",
    default=KEEP_JSON_DEFAULT,
    show_default=True,
    help="Keep each new instance's WADO-RS DICOM JSON now, so that a viewer's first request "
    "of a series is answered from kept JSON (README: Serve to OHIF).",
)
@quiet_option
@click.pass_context
def ingest(
    ctx: click.Context,
    paths: tuple[str, ...],
    sample: bool,
    data_source: str,
    workers: int | None,
    keep_json: bool,
    quiet: bool,
) -> None:
    """Ingest DICOM files and folders (recursively). Exits non-zero if any file failed.

    The workers start reading before the database is opened: the first files are parsed while
    this process loads the database modules and connects."""
    if not paths and not sample:
        raise click.UsageError("give PATH... or --sample")
    files = list(iter_files(paths)) + (sample_files() if sample else [])
    with (
        read_files(files, workers) as results,
        open_store(ctx) as store,
        counting_bar(quiet, "ingesting", len(files)) as advance,
    ):
        report = write_results(
            store, results, len(files), data_source=data_source, progress=advance,
            keep_json=keep_json,
        )  # fmt: skip
    _print_report(report)
    if report.failed:
        sys.exit(1)


def _print_report(report: IngestReport) -> None:
    for path, reason in report.skipped:
        click.echo(f"skipped {path}: {reason.removeprefix(f'{path}: ')}", err=True)
    for path, why in report.warnings:
        click.echo(f"warning {path}: {why}", err=True)
    if report.stopped is not None:
        click.echo(f"stopped: {report.stopped}", err=True)
        click.echo(
            f"{report.not_committed} files were not committed (everything counted as ingested "
            "was); run the same command again to finish",
            err=True,
        )
    click.echo(report.summary())

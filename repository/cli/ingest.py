"""``dicom-repo ingest``: file DICOM files and folders into the store."""

from __future__ import annotations

import sys

import click
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn

from ..ingest import IngestReport, iter_files, sample_files
from ..ingest import ingest as ingest_files
from ._shared import open_store, progress_bar, quiet_option


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
@quiet_option
@click.pass_context
def ingest(
    ctx: click.Context,
    paths: tuple[str, ...],
    sample: bool,
    data_source: str,
    workers: int | None,
    quiet: bool,
) -> None:
    """Ingest DICOM files and folders (recursively). Exits non-zero if any file failed."""
    if not paths and not sample:
        raise click.UsageError("give PATH... or --sample")
    files = list(iter_files(paths)) + (sample_files() if sample else [])
    progress = progress_bar(
        quiet, TextColumn("ingesting"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()
    )
    with open_store(ctx) as store, progress:
        task = progress.add_task("ingest", total=len(files))
        report = ingest_files(
            store,
            files,
            data_source=data_source,
            workers=workers,
            progress=lambda n: progress.advance(task, n),
        )
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

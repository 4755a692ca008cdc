"""``dicom-repo pull``: pull studies from a DICOMweb server into the store."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

import click
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)

from ._shared import open_store, progress_bar, quiet_option

if TYPE_CHECKING:
    from ..sources.dicomweb import DicomWebSource
    from ..sources.pull import PullProgress, PullReport


@click.command()
@click.argument("url")
@click.option("--study", "studies", multiple=True, metavar="UID", help="A study to pull (repeat).")
@click.option(
    "--query",
    "queries",
    multiple=True,
    metavar="KEY=VALUE",
    help="QIDO-RS study search filter, e.g. PatientID=123 or StudyDate=20240101-20241231.",
)
@click.option(
    "--data-source", default=None, help="Series list to file them under (default: host:port/path)."
)
@click.option("--wado-root", default=None, metavar="URL", help="WADO-RS root, if not URL.")
@click.option(
    "--header",
    "headers",
    multiple=True,
    metavar="'NAME: VALUE'",
    help="HTTP header sent with every request, e.g. 'Authorization: Bearer ...' (repeat).",
)
@click.option(
    "--timeout", type=click.FloatRange(min=0.1), default=30.0, show_default=True,
    help="Seconds to wait for each request.",
)  # fmt: skip
@click.option(
    "--fail-fast", is_flag=True,
    help="Stop at the first failed study or series (default: go on, report each at the end).",
)  # fmt: skip
@quiet_option
@click.pass_context
def pull(
    ctx: click.Context,
    url: str,
    studies: tuple[str, ...],
    queries: tuple[str, ...],
    data_source: str | None,
    wado_root: str | None,
    headers: tuple[str, ...],
    timeout: float,
    fail_fast: bool,
    quiet: bool,
) -> None:
    """Pull studies from the DICOMweb server at URL (its QIDO-RS/WADO-RS root).

    Pulls the given --study UIDs, else every study matching the --query filters, else every
    study. Each series is committed on its own; running the same pull again adds only what is
    missing. A study or series the server cannot serve is reported at the end (exit status 1)
    and the pull goes on, unless --fail-fast. Credentials (in URL or headers) are sent to the
    server only: never stored, never printed.
    """
    if studies and queries:
        raise click.UsageError("give --study or --query, not both")
    query = _parse_queries(queries)
    source = _source(url, wado_root, data_source, _parse_headers(headers), timeout)
    progress = progress_bar(
        quiet, TextColumn("pulling"), TextColumn("{task.fields[studies]} studies"), BarColumn(),
        MofNCompleteColumn(), TextColumn("series"), TimeRemainingColumn(),
    )  # fmt: skip
    show = _show_on(progress, progress.add_task("pull", total=None, studies="0/?"))
    with open_store(ctx) as store, source, progress:
        report = _run(progress, lambda: source.pull(
            store, studies=studies or None, query=query or None, progress=show,
            keep_going=not fail_fast,
        ))  # fmt: skip
    for failure in report.failures:
        click.echo(f"failed: {failure}", err=True)
    click.echo(report.summary() + (f", {len(report.failures)} failed" if report.failures else ""))
    if report.failures:
        sys.exit(1)


def _parse_queries(queries: tuple[str, ...]) -> dict[str, str]:
    parsed: dict[str, str] = {}
    for text in queries:
        key, equals, value = text.partition("=")
        key = key.strip()
        if not equals or not key:
            raise click.BadParameter(f"{text!r} is not KEY=VALUE", param_hint="--query")
        if key in parsed:
            raise click.BadParameter(f"{key} is given twice", param_hint="--query")
        parsed[key] = value
    return parsed


def _parse_headers(headers: tuple[str, ...]) -> dict[str, str]:
    # Imported here: dicomweb-client (and what it imports) would slow every other command.
    from ..sources.endpoint import parse_header

    sent: dict[str, str] = {}
    for text in headers:
        try:
            name, value = parse_header(text)
        except ValueError as error:
            raise click.BadParameter(str(error), param_hint="--header") from None
        sent[name] = value
    return sent


def _source(
    url: str, wado_root: str | None, name: str | None, headers: dict[str, str], timeout: float
) -> DicomWebSource:
    from ..sources.dicomweb import DicomWebSource

    try:
        return DicomWebSource(url, wado_root=wado_root, name=name, headers=headers, timeout=timeout)
    except ValueError as error:
        raise click.UsageError(str(error)) from None


def _show_on(progress: Progress, task: TaskID) -> Callable[[PullProgress], None]:
    def show(state: PullProgress) -> None:
        progress.update(
            task,
            total=state.series_total or None,
            completed=state.series_done,
            studies=f"{state.studies_done}/{state.studies_total}",
        )

    return show


def _run(progress: Progress, pull: Callable[[], PullReport]) -> PullReport:
    """Run the pull; a failure stops the bar and says what was committed before it."""
    from ..sources.pull import PullError

    try:
        return pull()
    except PullError as error:
        progress.stop()
        if error.report is not None and error.report.series:
            click.echo(f"before the error: {error.report.summary()}", err=True)
        raise click.ClickException(str(error)) from None

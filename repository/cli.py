"""The ``dicom-repo`` command line."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
import orjson
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from . import migrate
from .cli_feed import changes
from .web.cli import serve
from .config import DEFAULT_URL, ENV_VAR
from .engine import make_engine
from .errors import RepositoryError
from .ingest import ingest as ingest_files
from .ingest import iter_files, sample_files
from .models import Instance, Series, Study
from .store import Store

# Piped output is not wrapped at 80 columns: UIDs must survive copy and paste.
console = Console(width=None if sys.stdout.isatty() else 250)
err = Console(stderr=True)


def _json(value: Any) -> None:
    click.echo(orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode())


@contextmanager
def _engine(ctx: click.Context) -> Iterator[Engine]:
    """An engine for the db commands; failures become one-line errors, not tracebacks."""
    try:
        engine = make_engine(ctx.obj["url"])
    except Exception as error:
        raise click.ClickException(f"invalid database URL: {error}") from None
    try:
        yield engine
    except (RepositoryError, SQLAlchemyError) as error:
        where = engine.url.render_as_string(hide_password=True)
        detail = getattr(error, "orig", None) or error
        raise click.ClickException(f"database {where}: {detail}") from None
    finally:
        engine.dispose()


@contextmanager
def _store(ctx: click.Context) -> Iterator[Store]:
    from . import connect

    try:
        store = connect(ctx.obj["url"])
    except RepositoryError as error:
        raise click.ClickException(str(error)) from None
    try:
        yield store
    except RepositoryError as error:
        raise click.ClickException(str(error)) from None
    finally:
        store.close()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--db",
    "url",
    envvar=ENV_VAR,
    default=None,
    metavar="URL",
    help=f"Database URL (default: ${ENV_VAR}, else {DEFAULT_URL}).",
)
@click.version_option(package_name="dicom-repo")
@click.pass_context
def main(ctx: click.Context, url: str | None) -> None:
    """Keep DICOM metadata in SQLite or PostgreSQL (OHIF's DicomMetadataStore, as a database)."""
    ctx.obj = {"url": url}


# ---------------------------------------------------------------------------------------- db


@main.group()
def db() -> None:
    """Create and migrate the database schema."""


@db.command("upgrade")
@click.argument("revision", default="head")
@click.pass_context
def db_upgrade(ctx: click.Context, revision: str) -> None:
    """Migrate the database up to REVISION (default: the newest)."""
    with _engine(ctx) as engine:
        migrate.upgrade(engine, revision)
        click.echo(f"database at revision {migrate.current_revision(engine)}")


@db.command("downgrade")
@click.argument("revision")
@click.pass_context
def db_downgrade(ctx: click.Context, revision: str) -> None:
    """Migrate the database down to REVISION ('base' removes every table)."""
    with _engine(ctx) as engine:
        migrate.downgrade(engine, revision)
        click.echo(f"database at revision {migrate.current_revision(engine) or 'base'}")


@db.command("current")
@click.pass_context
def db_current(ctx: click.Context) -> None:
    """Print the database's revision and the newest one this version ships."""
    with _engine(ctx) as engine:
        current, head = migrate.current_revision(engine), migrate.head_revision()
        state = "up to date" if current == head else "needs `dicom-repo db upgrade`"
        click.echo(f"current: {current or 'none'}  head: {head}  ({state})")


@db.command("check")
@click.pass_context
def db_check(ctx: click.Context) -> None:
    """Fail if the migrated schema differs from the models."""
    with _engine(ctx) as engine:
        diffs = migrate.model_differences(engine)
    if diffs:
        for diff in diffs:
            err.print(f"[red]differs:[/] {diff}")
        sys.exit(1)
    click.echo("models match migrations")


# ------------------------------------------------------------------------------------ ingest


@main.command()
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
@click.option("--quiet", "-q", is_flag=True, help="No progress bar; print only the summary.")
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
    with _store(ctx) as store:
        progress = Progress(
            TextColumn("ingesting"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=err,
            disable=quiet or not err.is_terminal,
        )
        with progress:
            task = progress.add_task("ingest", total=len(files))
            report = ingest_files(
                store,
                files,
                data_source=data_source,
                workers=workers,
                progress=lambda n: progress.advance(task, n),
            )
    for path, reason in report.skipped:
        reason = reason.removeprefix(f"{path}: ")
        click.echo(f"skipped {path}: {reason}", err=True)
    click.echo(
        f"{report.ingested} ingested, {report.already_present} already present, "
        f"{len(report.skipped)} skipped"
    )
    if report.failed:
        sys.exit(1)


# -------------------------------------------------------------------------------------- pull


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


@main.command()
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
@click.option("--keep-going", is_flag=True, help="Go on after a failed study or series.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar; print only the summary.")
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
    keep_going: bool,
    quiet: bool,
) -> None:
    """Pull studies from the DICOMweb server at URL (its QIDO-RS/WADO-RS root).

    Pulls the given --study UIDs, else every study matching the --query filters, else every
    study. Each series is committed on its own; running the same pull again adds only what is
    missing. Credentials (in URL or headers) are sent to the server only: never stored, never
    printed.
    """
    # Imported here: dicomweb-client (and what it imports) would slow every other command.
    from .sources.dicomweb import (
        DicomWebSource,
        PullError,
        PullProgress,
        PullReport,
        parse_header,
    )

    if studies and queries:
        raise click.UsageError("give --study or --query, not both")
    query = _parse_queries(queries)
    sent: dict[str, str] = {}
    for text in headers:
        try:
            name, value = parse_header(text)
        except ValueError as error:
            raise click.BadParameter(str(error), param_hint="--header") from None
        sent[name] = value
    try:
        source = DicomWebSource(
            url, wado_root=wado_root, name=data_source, headers=sent, timeout=timeout
        )
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    progress = Progress(
        TextColumn("pulling"),
        TextColumn("{task.fields[studies]} studies"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("series"),
        TimeRemainingColumn(),
        console=err,
        disable=quiet or not err.is_terminal,
    )
    task = progress.add_task("pull", total=None, studies="0/?")

    def show(state: PullProgress) -> None:
        progress.update(
            task,
            total=state.series_total or None,
            completed=state.series_done,
            studies=f"{state.studies_done}/{state.studies_total}",
        )

    def summary(done: PullReport) -> str:
        return (
            f"{done.studies} studies, {done.series} series from {done.data_source}: "
            f"{done.instances_added} instances added, {done.instances_present} already present"
        )

    with _store(ctx) as store, source, progress:
        try:
            report = source.pull(
                store,
                studies=studies or None,
                query=query or None,
                progress=show,
                keep_going=keep_going,
            )
        except PullError as error:
            progress.stop()
            if error.report is not None and error.report.series:
                click.echo(f"before the error: {summary(error.report)}", err=True)
            raise click.ClickException(str(error)) from None
    for failure in report.failures:
        click.echo(f"failed: {failure}", err=True)
    click.echo(summary(report) + (f", {len(report.failures)} failed" if report.failures else ""))
    if report.failures:
        sys.exit(1)


# ------------------------------------------------------------------------------------- reads


def _study_json(study: Study) -> dict[str, Any]:
    out = {k: v for k, v in dataclasses.asdict(study).items() if k not in ("series_lists",)}
    out.pop("raw_metadata", None)
    out["series_lists"] = [
        {
            "data_source": sl.data_source,
            "wado_root": sl.wado_root,
            "wado_uri": sl.wado_uri,
            "series": [_series_json(s, with_instances=False) for s in sl.series],
        }
        for sl in study.series_lists
    ]
    out["metadata"] = dict(study.metadata)
    return out


def _series_json(series: Series, *, with_instances: bool = True) -> dict[str, Any]:
    out = {
        f.name: getattr(series, f.name)
        for f in dataclasses.fields(series)
        if f.name not in ("instances", "raw_metadata")
    }
    out["number_of_instances"] = len(series.instances)
    out["metadata"] = dict(series.metadata)
    if with_instances:
        out["instances"] = [_instance_json(i, with_metadata=False) for i in series.instances]
    return out


def _instance_json(inst: Instance, *, with_metadata: bool = True) -> dict[str, Any]:
    out = {f.name: getattr(inst, f.name) for f in dataclasses.fields(inst)}
    out.pop("raw_metadata")
    if with_metadata:
        out["metadata"] = dict(inst.metadata)
    return out


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def studies(ctx: click.Context, as_json: bool) -> None:
    """List the studies in the store."""
    with _store(ctx) as store:
        rows = [store.get_study(uid) for uid in store.get_study_instance_uids()]
    found = [s for s in rows if s is not None]
    if as_json:
        _json([{k: v for k, v in _study_json(s).items() if k != "metadata"} for s in found])
        return
    table = Table("StudyInstanceUID", "Patient", "Date", "Modalities", "Description", "Series",
                  "Instances", box=None)  # fmt: skip
    for s in found:
        table.add_row(
            s.study_instance_uid,
            s.patient_name or s.patient_id or "",
            str(s.study_date or ""),
            "\\".join(s.modalities_in_study),
            s.study_description or "",
            str(len(s.series)),
            str(sum(len(se.instances) for se in s.series)),
        )
    console.print(table)
    console.print(f"{len(found)} studies")


@main.command()
@click.argument("study_uid")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def study(ctx: click.Context, study_uid: str, as_json: bool) -> None:
    """Show one study and its series."""
    with _store(ctx) as store:
        found = store.get_study(study_uid)
    if found is None:
        raise click.ClickException(f"study {study_uid} is not in the store")
    if as_json:
        _json(_study_json(found))
        return
    click.echo(f"Study {found.study_instance_uid}  {found.patient_name or ''}  "
               f"{found.study_date or ''}  {found.study_description or ''}")  # fmt: skip
    table = Table("Data source", "SeriesInstanceUID", "Modality", "#", "Description",
                  "Instances", box=None)  # fmt: skip
    for sl in found.series_lists:
        for s in sl.series:
            table.add_row(sl.data_source, s.series_instance_uid, s.modality or "",
                          str(s.series_number or ""), s.series_description or "",
                          str(len(s.instances)))  # fmt: skip
    console.print(table)


@main.command()
@click.argument("study_uid")
@click.argument("series_uid")
@click.option("--data-source", default=None, help="Which data source's copy (default: first).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def series(
    ctx: click.Context, study_uid: str, series_uid: str, data_source: str | None, as_json: bool
) -> None:
    """Show one series and its instances."""
    with _store(ctx) as store:
        found = store.get_series(study_uid, series_uid, data_source=data_source)
    if found is None:
        raise click.ClickException(f"series {series_uid} of study {study_uid} is not in the store")
    if as_json:
        _json(_series_json(found))
        return
    click.echo(f"Series {found.series_instance_uid}  {found.modality or ''}  "
               f"{found.series_description or ''}  ({found.data_source})")  # fmt: skip
    table = Table("#", "SOPInstanceUID", "SOPClassUID", "Frames", "imageId", box=None)
    for i in found.instances:
        table.add_row(str(i.instance_number or ""), i.sop_instance_uid, i.sop_class_uid or "",
                      str(i.number_of_frames or 1), i.image_id)  # fmt: skip
    console.print(table)


@main.command()
@click.argument("study_uid")
@click.argument("series_uid")
@click.argument("sop_instance_uid")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (with full metadata).")
@click.pass_context
def instance(
    ctx: click.Context, study_uid: str, series_uid: str, sop_instance_uid: str, as_json: bool
) -> None:
    """Show one instance's metadata."""
    with _store(ctx) as store:
        found = store.get_instance(study_uid, series_uid, sop_instance_uid)
    if found is None:
        raise click.ClickException(f"instance {sop_instance_uid} is not in the store")
    _print_instance(found, as_json)


@main.command("display-sets")
@click.argument("study_uid")
@click.option("--data-source", default=None, help="Only this data source's series.")
@click.option(
    "--handler",
    "handlers",
    multiple=True,
    help="Use only these handler ids, in this order (repeatable; default: all registered).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def display_sets(
    ctx: click.Context,
    study_uid: str,
    data_source: str | None,
    handlers: tuple[str, ...],
    as_json: bool,
) -> None:
    """Show the display sets a viewer would build for a study."""
    with _store(ctx) as store:
        found = store.get_display_sets(
            study_uid, data_source=data_source, handlers=list(handlers) or None
        )
    if as_json:
        _json([ds.to_json() for ds in found])
        return
    table = Table("DisplaySetInstanceUID", "Handler", "Plugin", "Modality", "#", "Description",
                  "Instances", "Frames", "Notes", box=None)  # fmt: skip
    for ds in found:
        notes = [n for n, on in (("volume", ds.is_reconstructable),
                                 ("derived", ds.is_derived_display_set)) if on]  # fmt: skip
        if ds.referenced_series_instance_uid:
            notes.append(f"refers to {ds.referenced_series_instance_uid}")
        if ds.is_unsupported:
            notes.append(str(ds.extras.get("reason", "")))
        table.add_row(ds.display_set_instance_uid, ds.sop_class_handler_id, ds.plugin,
                      ds.modality or "", str(ds.series_number or ""), ds.label,
                      str(len(ds.instances)), str(ds.num_image_frames),
                      "; ".join(notes))  # fmt: skip
    console.print(table)


@main.command("image-id")
@click.argument("image_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (with full metadata).")
@click.pass_context
def image_id(ctx: click.Context, image_id: str, as_json: bool) -> None:
    """Find the instance an imageId (instance- or frame-level) refers to."""
    with _store(ctx) as store:
        found = store.get_instance_from_image_id(image_id)
    if found is None:
        raise click.ClickException(f"no instance has imageId {image_id}")
    _print_instance(found, as_json)


def _print_instance(found: Instance, as_json: bool) -> None:
    if as_json:
        _json(_instance_json(found))
        return
    table = Table("Attribute", "Value", box=None)
    for name, value in _instance_json(found, with_metadata=False).items():
        table.add_row(name, "" if value is None else str(value))
    for key, value in found.metadata.items():
        text = orjson.dumps(value).decode() if not isinstance(value, str) else value
        table.add_row(key, text if len(text) < 120 else text[:117] + "...")
    console.print(table, markup=False)


main.add_command(changes)
main.add_command(serve)

__all__ = ["main"]

"""``dicom-repo delete`` (studies, series, instances) and ``dicom-repo prune`` (retention).

Both remove files only inside ``--storage`` (the folder ``serve --storage`` writes STOW-RS files
into), and only after each commit; files ``ingest`` read in place are never touched.
"""

from __future__ import annotations

import datetime as dt
import re
import sys
from pathlib import Path

import click

from .. import storage
from ..models import DeleteResult
from ..retention import PruneResult, PruneRule, prune
from ..store import Store
from ._shared import counting_bar, json_option, open_store, print_json, quiet_option

DAYS = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([dwy]?)\s*$")
UNIT_DAYS = {"": 1, "d": 1, "w": 7, "y": 365}

data_source_option = click.option(
    "--data-source", metavar="NAME", default=None,
    help="Only the series list of this data source (default: every data source).",
)  # fmt: skip
storage_option = click.option(
    "--storage", "storage_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
    metavar="DIR",
    help="The server's storage folder: files of removed instances in it are deleted too.",
)  # fmt: skip


@click.command("delete")
@click.argument("level", type=click.Choice(["study", "series", "instance"]))
@click.argument("uids", nargs=-1, required=True, metavar="UID...")
@data_source_option
@storage_option
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def delete(
    ctx: click.Context,
    level: str,
    uids: tuple[str, ...],
    data_source: str | None,
    storage_dir: Path | None,
    yes: bool,
) -> None:
    """Delete studies, a study's series, or a series' instances, with what is under them.

    \b
      dicom-repo delete study STUDY_UID...
      dicom-repo delete series STUDY_UID SERIES_UID...
      dicom-repo delete instance STUDY_UID SERIES_UID SOP_UID...
    """
    needed = {"study": 1, "series": 2, "instance": 3}[level]
    if len(uids) < needed:
        raise click.UsageError(f"delete {level} needs {needed} UIDs or more (see --help)")
    if not yes and sys.stdin.isatty():
        click.confirm(f"Delete {level} {' '.join(uids)}?", abort=True, err=True)
    with open_store(ctx) as store:
        result = _delete(store, level, uids, data_source)
    files = storage.remove_after_commit(result.files, storage_dir)
    gone = f"; {len(result.studies)} studies removed" if result.studies else ""
    click.echo(f"deleted {len(result.series)} series, {result.instances} instances"
               f"{gone}{f', {files} files' if storage_dir else ''}")  # fmt: skip


def _delete(store: Store, level: str, uids: tuple[str, ...], source: str | None) -> DeleteResult:
    if level == "instance":
        return store.delete_instances(uids[0], uids[1], uids[2:], data_source=source)
    results = [
        store.delete_study(uid, data_source=source)
        if level == "study"
        else store.delete_series(uids[0], uid, data_source=source)
        for uid in (uids if level == "study" else uids[1:])
    ]
    return DeleteResult(
        tuple(s for r in results for s in r.studies),
        tuple(s for r in results for s in r.series),
        sum(r.instances for r in results),
        tuple(f for r in results for f in r.files),
    )


def _days(value: str | None) -> float | None:
    if value is None:
        return None
    match = DAYS.match(value)
    if not match:
        raise click.BadParameter(f"{value!r}: give days as N, Nd, Nw or Ny (90d)")
    return float(match[1]) * UNIT_DAYS[match[2]]


@click.command("prune")
@click.option("--older-than", metavar="AGE", default=None,
              help="Studies whose StudyDate is older than this: 90d, 12w, 7y.")  # fmt: skip
@click.option("--received-before", type=click.DateTime(), default=None, metavar="DATE",
              help="Studies first stored before this date (YYYY-MM-DD, UTC).")  # fmt: skip
@click.option("--modality", "modalities", multiple=True, metavar="CT",
              help="Studies with a series of this modality (repeatable).")  # fmt: skip
@data_source_option
@storage_option
@click.option("--dry-run", is_flag=True, help="List what would go; delete nothing.")
@json_option(help="Print the summary as JSON.")
@quiet_option
@click.pass_context
def prune_command(
    ctx: click.Context,
    older_than: str | None,
    received_before: dt.datetime | None,
    modalities: tuple[str, ...],
    data_source: str | None,
    storage_dir: Path | None,
    dry_run: bool,
    as_json: bool,
    quiet: bool,
) -> None:
    """Delete the studies a retention rule selects, one study per transaction.

    Every criterion given applies. Interrupted, it has deleted whole studies only: run it
    again to finish.
    """
    if received_before is not None and received_before.tzinfo is None:
        received_before = received_before.replace(tzinfo=dt.UTC)
    with open_store(ctx) as store:
        rule = PruneRule(_days(older_than), received_before, modalities, data_source)
        with store.engine.connect() as conn:
            uids = rule.studies(conn)
        files = 0
        with counting_bar(quiet or as_json, "pruning", len(uids)) as advance:

            def done(_uid: str, deleted: DeleteResult | None) -> None:
                nonlocal files
                if deleted is not None:
                    files += storage.remove_after_commit(deleted.files, storage_dir)
                advance(1)

            result = prune(store, rule, on_study=done, dry_run=dry_run, selected=uids)
    _summary(result, files, dry_run, as_json)


def _summary(result: PruneResult, files: int, dry_run: bool, as_json: bool) -> None:
    if as_json:
        print_json({"studies": len(result.studies), "instances": result.instances,
                    "files": files, "dry_run": dry_run, "study_uids": result.studies})  # fmt: skip
        return
    if dry_run:
        for uid in result.studies:
            click.echo(uid)
        click.echo(f"would delete {len(result.studies)} studies (dry run)", err=True)
        return
    click.echo(f"pruned {len(result.studies)} studies, {result.instances} instances, "
               f"{files} files")  # fmt: skip


@click.command("storage")
@click.argument("action", type=click.Choice(["check"]))
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--fix", is_flag=True, help="Remove the orphan files found.")
@click.option("--grace", type=click.FloatRange(min=0), default=storage.GRACE_SECONDS,
              show_default=True, metavar="SECONDS",
              help="Leave younger files and instances alone (a STOW may commit).")  # fmt: skip
@json_option()
@click.pass_context
def storage_command(
    ctx: click.Context, action: str, folder: Path, fix: bool, grace: float, as_json: bool
) -> None:
    """Check a storage folder against the database: orphan files (no instance refers to them)
    and instances whose file is missing. Exits 1 when something is out of step (and not fixed).
    """
    with open_store(ctx) as store, store.engine.connect() as conn:
        report = storage.check(conn, folder, grace=grace)
    removed = storage.fix(report, folder) if fix else 0
    if as_json:
        print_json({"files": report.files, "orphans": [str(p) for p in report.orphans],
                    "missing": [{"sop_instance_uid": s, "file": str(p)} for s, p in report.missing],
                    "removed": removed})  # fmt: skip
    else:
        for path in report.orphans:
            click.echo(f"orphan\t{path}{'  (removed)' if fix else ''}")
        for sop, path in report.missing:
            click.echo(f"missing\t{path}\t{sop}")
        click.echo(f"{report.files} files: {len(report.orphans)} orphans"
                   f"{f' ({removed} removed)' if fix else ''}, "
                   f"{len(report.missing)} instances without their file", err=True)  # fmt: skip
    if report.missing or (report.orphans and not fix):
        ctx.exit(1)

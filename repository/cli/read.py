"""The read commands: ``studies``, ``study``, ``series``, ``instance``, ``image-id``,
``display-sets``. Each asks the store one question and prints the answer (table or JSON)."""

from __future__ import annotations

import click

from ..models import Instance
from . import render
from ._shared import console, json_option, open_store, print_json


@click.command()
@json_option()
@click.pass_context
def studies(ctx: click.Context, as_json: bool) -> None:
    """List the studies in the store."""
    with open_store(ctx) as store:
        found = store.get_study_summaries()
    if as_json:
        print_json([render.study_json(s) for s in found])
        return
    console().print(render.studies_table(found))
    console().print(f"{len(found)} studies")


@click.command()
@click.argument("study_uid")
@json_option()
@click.pass_context
def study(ctx: click.Context, study_uid: str, as_json: bool) -> None:
    """Show one study and its series."""
    with open_store(ctx) as store:
        found = store.get_study(study_uid)
    if found is None:
        raise click.ClickException(f"study {study_uid} is not in the store")
    if as_json:
        print_json(render.study_json(found))
        return
    click.echo(f"Study {found.study_instance_uid}  {found.patient_name or ''}  "
               f"{found.study_date or ''}  {found.study_description or ''}")  # fmt: skip
    console().print(render.study_table(found))


@click.command()
@click.argument("study_uid")
@click.argument("series_uid")
@click.option("--data-source", default=None, help="Which data source's copy (default: first).")
@json_option()
@click.pass_context
def series(
    ctx: click.Context, study_uid: str, series_uid: str, data_source: str | None, as_json: bool
) -> None:
    """Show one series and its instances."""
    with open_store(ctx) as store:
        found = store.get_series(study_uid, series_uid, data_source=data_source)
    if found is None:
        raise click.ClickException(f"series {series_uid} of study {study_uid} is not in the store")
    if as_json:
        print_json(render.series_json(found))
        return
    click.echo(f"Series {found.series_instance_uid}  {found.modality or ''}  "
               f"{found.series_description or ''}  ({found.data_source})")  # fmt: skip
    console().print(render.series_table(found))


@click.command()
@click.argument("study_uid")
@click.argument("series_uid")
@click.argument("sop_instance_uid")
@json_option(help="Print JSON (with full metadata).")
@click.pass_context
def instance(
    ctx: click.Context, study_uid: str, series_uid: str, sop_instance_uid: str, as_json: bool
) -> None:
    """Show one instance's metadata."""
    with open_store(ctx) as store:
        found = store.get_instance(study_uid, series_uid, sop_instance_uid)
    if found is None:
        raise click.ClickException(f"instance {sop_instance_uid} is not in the store")
    _print_instance(found, as_json)


@click.command("image-id")
@click.argument("image_id")
@json_option(help="Print JSON (with full metadata).")
@click.pass_context
def image_id(ctx: click.Context, image_id: str, as_json: bool) -> None:
    """Find the instance an imageId (instance- or frame-level) refers to."""
    with open_store(ctx) as store:
        found = store.get_instance_from_image_id(image_id)
    if found is None:
        raise click.ClickException(f"no instance has imageId {image_id}")
    _print_instance(found, as_json)


def _print_instance(found: Instance, as_json: bool) -> None:
    if as_json:
        print_json(render.instance_json(found))
    else:
        console().print(render.instance_table(found), markup=False)


@click.command("display-sets")
@click.argument("study_uid")
@click.option("--data-source", default=None, help="Only this data source's series.")
@click.option(
    "--handler",
    "handlers",
    multiple=True,
    help="Use only these handler ids, in this order (repeatable; default: all registered).",
)
@json_option()
@click.pass_context
def display_sets(
    ctx: click.Context,
    study_uid: str,
    data_source: str | None,
    handlers: tuple[str, ...],
    as_json: bool,
) -> None:
    """Show the display sets a viewer would build for a study."""
    with open_store(ctx) as store:
        found = store.get_display_sets(
            study_uid, data_source=data_source, handlers=list(handlers) or None
        )
    if as_json:
        print_json([ds.to_json() for ds in found])
    else:
        console().print(render.display_sets_table(found))

"""``dicom-repo sql`` and ``dicom-repo report``: read-only SQL and the cookbook's named reports."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import click
from sqlalchemy import Engine

from .. import migrate
from ..errors import RepositoryError
from .output import FORMATS, WRITERS, write_table
from .query import read_only_query
from .reports import REPORTS, get_report

_format_option = click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="table",
    show_default=True,
    help="Output: aligned table, CSV with a header line, or a JSON array of objects.",
)


@contextmanager
def _engine(ctx: click.Context) -> Iterator[Engine]:
    """An engine on the migrated database named by ``--db``; errors become one-line messages."""
    # Imported here: repository.cli imports this module to register its commands.
    from ..cli._shared import open_read_engine

    with open_read_engine(ctx) as engine:
        migrate.ensure_current(engine)
        yield engine


def _run(ctx: click.Context, sql: str, params: Mapping[str, Any], fmt: str) -> None:
    with _engine(ctx) as engine, read_only_query(engine, sql, params) as result:
        if fmt == "table":
            from ..cli._shared import console

            write_table(console(), result.columns, result.rows)
        else:
            WRITERS[fmt](sys.stdout, result.columns, result.rows)


@click.command("sql")
@click.argument("statement")
@_format_option
@click.pass_context
def sql(ctx: click.Context, statement: str, fmt: str) -> None:
    """Run one read-only SQL STATEMENT and print its rows (writes are refused).

    The reporting views v_study, v_series and v_instance are the place to start; see
    docs/reporting.md.
    """
    _run(ctx, statement, {}, fmt)


def _parse_params(values: tuple[str, ...]) -> dict[str, str]:
    params = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--param")
        params[key.strip()] = value
    return params


@click.command("report")
@click.argument("name", required=False)
@click.option("--list", "list_", is_flag=True, help="List the reports and their parameters.")
@click.option(
    "--param", "params", multiple=True, metavar="KEY=VALUE", help="Set a report parameter."
)
@_format_option
@click.pass_context
def report(
    ctx: click.Context, name: str | None, list_: bool, params: tuple[str, ...], fmt: str
) -> None:
    """Run the cookbook's report NAME (see --list and docs/reporting.md)."""
    if list_ or name is None:
        for item in REPORTS:
            defaults = " ".join(
                f"{k}={'(required)' if v is None else v}" for k, v in item.params.items()
            )
            click.echo(f"{item.name}\t{item.question}{'  [' + defaults + ']' if defaults else ''}")
        return
    try:
        chosen = get_report(name)
        values = chosen.bind(_parse_params(params))
    except RepositoryError as error:
        raise click.ClickException(str(error)) from None
    with _engine(ctx) as engine:
        dialect = engine.dialect.name
    _run(ctx, chosen.sql_for(dialect), values, fmt)

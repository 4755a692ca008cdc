"""``dicom-repo db``: create, migrate and check the database schema."""

from __future__ import annotations

import sys

import click

from .. import migrate
from ._shared import err, open_engine


@click.group()
def db() -> None:
    """Create and migrate the database schema."""


@db.command("upgrade")
@click.argument("revision", default="head")
@click.pass_context
def db_upgrade(ctx: click.Context, revision: str) -> None:
    """Migrate the database up to REVISION (default: the newest)."""
    with open_engine(ctx) as engine:
        migrate.upgrade(engine, revision)
        click.echo(f"database at revision {migrate.current_revision(engine)}")


@db.command("downgrade")
@click.argument("revision")
@click.pass_context
def db_downgrade(ctx: click.Context, revision: str) -> None:
    """Migrate the database down to REVISION ('base' removes every table)."""
    with open_engine(ctx) as engine:
        migrate.downgrade(engine, revision)
        click.echo(f"database at revision {migrate.current_revision(engine) or 'base'}")


@db.command("current")
@click.pass_context
def db_current(ctx: click.Context) -> None:
    """Print the database's revision and the newest one this version ships."""
    with open_engine(ctx) as engine:
        current, head = migrate.current_revision(engine), migrate.head_revision()
        state = "up to date" if current == head else "needs `dicom-repo db upgrade`"
        click.echo(f"current: {current or 'none'}  head: {head}  ({state})")


@db.command("check")
@click.pass_context
def db_check(ctx: click.Context) -> None:
    """Fail if the migrated schema differs from the models."""
    with open_engine(ctx) as engine:
        diffs = migrate.model_differences(engine)
    if diffs:
        for diff in diffs:
            err().print(f"[red]differs:[/] {diff}")
        sys.exit(1)
    click.echo("models match migrations")


@db.command("distribute")
@click.option(
    "--shard-count",
    type=click.IntRange(1, 10000),
    default=None,
    help="Shards per distributed table (default: citus.shard_count, 32).",
)
@click.pass_context
def db_distribute(ctx: click.Context, shard_count: int | None) -> None:
    """Distribute the tables over a Citus cluster (once, after `db upgrade`), by study."""
    from .. import citus

    with open_engine(ctx) as engine, engine.begin() as conn:
        done = citus.distribute(conn, shard_count)
    for step in done:
        click.echo(step)
    click.echo("distributed" if done else "already distributed")

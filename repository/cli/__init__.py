"""The ``dicom-repo`` command line: the group, its ``--db`` option, and the command table.

Each command group lives in its own module. To add a command, write it as a click command in
your package and add one line to :data:`COMMANDS` (``"package.module:command"``); the shared
options (``--json``, ``--quiet``) and the store/engine helpers are in
:mod:`repository.cli._shared`.
"""

from __future__ import annotations

from importlib import import_module

import click

from ..config import DEFAULT_URL, ENV_VAR

COMMANDS: tuple[str, ...] = (
    "repository.cli.db:db",
    "repository.cli.ingest:ingest",
    "repository.cli.pull:pull",
    "repository.cli.read:studies",
    "repository.cli.read:study",
    "repository.cli.read:series",
    "repository.cli.read:instance",
    "repository.cli.read:display_sets",
    "repository.cli.read:image_id",
    "repository.cli.feed:changes",
    "repository.reporting.cli:sql",
    "repository.reporting.cli:report",
    "repository.web.cli:serve",
)
"""Every command of ``dicom-repo``, as ``module:attribute`` of a click command or group."""


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


def load_command(spec: str) -> click.Command:
    """The click command named by ``"module:attribute"``."""
    module, _, attribute = spec.partition(":")
    command = getattr(import_module(module), attribute)
    if not isinstance(command, click.Command):
        raise TypeError(f"{spec} is not a click command")
    return command


for _spec in COMMANDS:
    main.add_command(load_command(_spec))

__all__ = ["COMMANDS", "load_command", "main"]

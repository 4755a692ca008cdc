"""The ``dicom-repo`` command line: the group, its ``--db`` option, and the command table.

Each command group lives in its own module, imported only when its command runs (or ``--help``
lists every command): ``dicom-repo ingest`` does not pay for the web server, the DICOMweb client
or alembic. To add a command, write it as a click command in your package and add one line to
:data:`COMMANDS` (``"name": "package.module:command"``); the shared options (``--json``,
``--quiet``) and the store/engine helpers are in :mod:`repository.cli._shared`.
"""

from __future__ import annotations

import gc
from collections.abc import Mapping
from importlib import import_module
from typing import Any

import click

from ..config import DEFAULT_URL, ENV_VAR, READ_URLS_ENV_VAR

COMMANDS: Mapping[str, str] = {
    "db": "repository.cli.db:db",
    "ingest": "repository.cli.ingest:ingest",
    "pull": "repository.cli.pull:pull",
    "studies": "repository.cli.read:studies",
    "study": "repository.cli.read:study",
    "series": "repository.cli.read:series",
    "instance": "repository.cli.read:instance",
    "display-sets": "repository.cli.read:display_sets",
    "image-id": "repository.cli.read:image_id",
    "changes": "repository.cli.feed:changes",
    "delete": "repository.cli.delete:delete",
    "prune": "repository.cli.delete:prune_command",
    "storage": "repository.cli.delete:storage_command",
    "sql": "repository.reporting.cli:sql",
    "report": "repository.reporting.cli:report",
    "serve": "repository.web.cli:serve",
}
"""Every command of ``dicom-repo``: its name, and the ``module:attribute`` of its click command."""


def load_command(spec: str) -> click.Command:
    """The click command named by ``"module:attribute"``."""
    module, _, attribute = spec.partition(":")
    command = getattr(import_module(module), attribute)
    if not isinstance(command, click.Command):
        raise TypeError(f"{spec} is not a click command")
    return command


class LazyGroup(click.Group):
    """A group whose commands (``lazy_commands``: name to ``module:attribute``) are imported
    when first looked up."""

    def __init__(self, *args: Any, lazy_commands: Mapping[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands = dict(lazy_commands)

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Every command's name, without importing any of them."""
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The command ``cmd_name``, imported (once) if it is not loaded yet."""
        spec = self.lazy_commands.get(cmd_name)
        if cmd_name not in self.commands and spec is not None:
            command = load_command(spec)
            if command.name != cmd_name:
                raise TypeError(f"{spec} is the command {command.name!r}, not {cmd_name!r}")
            self.add_command(command)
        return super().get_command(ctx, cmd_name)


@click.group(
    cls=LazyGroup,
    lazy_commands=COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.option(
    "--db",
    "url",
    envvar=ENV_VAR,
    default=None,
    metavar="URL",
    help=f"Database URL (default: ${ENV_VAR}, else {DEFAULT_URL}).",
)
@click.option(
    "--read-db",
    "read_urls",
    multiple=True,
    envvar=READ_URLS_ENV_VAR,
    metavar="URL",
    help=f"A PostgreSQL hot standby of --db to read from (repeat; default: ${READ_URLS_ENV_VAR}, "
    "space-separated). Writes always go to --db.",
)
@click.version_option(package_name="dicom-repo")
@click.pass_context
def main(ctx: click.Context, url: str | None, read_urls: tuple[str, ...]) -> None:
    """Keep DICOM metadata in SQLite or PostgreSQL (OHIF's DicomMetadataStore, as a database)."""
    ctx.obj = {"url": url, "read_urls": read_urls}


def run() -> None:
    """The ``dicom-repo`` console script: :func:`main`, then a quick exit.

    The objects of every module imported so far are moved out of the garbage collector's reach
    (``gc.freeze``) before the command runs and again when it ends. Without it CPython's final
    collection at exit walks SQLAlchemy's, pydicom's and numpy's objects: about 0.2 s of every
    command, as much as a short ingest. The worker processes forked by ``ingest`` inherit the
    frozen objects, so their collections skip them too. (In-process callers of :func:`main`,
    such as tests, are not affected.)
    """
    gc.freeze()
    try:
        main()
    finally:
        gc.freeze()


__all__ = ["COMMANDS", "LazyGroup", "load_command", "main", "run"]

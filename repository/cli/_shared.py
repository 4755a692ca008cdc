"""What every command shares: consoles, the --json option, JSON output, store and engine.

rich is imported only by the commands that print with it (tables, colours, a progress bar):
``dicom-repo ingest --quiet`` never loads it. The store (SQLAlchemy, the driver) is imported when
a command opens it, so ``ingest`` can start its readers first.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import click
import orjson

from ..errors import RepositoryError

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, ProgressColumn
    from sqlalchemy import Engine

    from ..store import Store

F = TypeVar("F", bound=Callable[..., Any])


@functools.cache
def console() -> Console:
    """The rich console of standard output (piped output is not wrapped at 80 columns: UIDs
    must survive copy and paste)."""
    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else 250)


@functools.cache
def err() -> Console:
    """The rich console of standard error."""
    from rich.console import Console

    return Console(stderr=True)


def json_option(help: str = "Print JSON instead of a table.") -> Callable[[F], F]:
    """The ``--json`` flag of every command that prints data (passed as ``as_json``)."""
    return click.option("--json", "as_json", is_flag=True, help=help)


def quiet_option(function: F) -> F:
    """The ``--quiet`` flag of the commands that show a progress bar."""
    return click.option(
        "--quiet", "-q", is_flag=True, help="No progress bar; print only the summary."
    )(function)


def print_json(value: Any) -> None:
    """Print ``value`` as indented JSON."""
    click.echo(orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode())


def progress_bar(quiet: bool, *columns: str | ProgressColumn) -> Progress:
    """A progress bar on stderr, shown only on a terminal and without ``--quiet``."""
    from rich.progress import Progress

    return Progress(*columns, console=err(), disable=quiet or not err().is_terminal)


@contextmanager
def counting_bar(quiet: bool, label: str, total: int) -> Iterator[Callable[[int], object]]:
    """Yield ``advance(n)`` of a ``label ━━━━ done/total time-left`` bar (see
    :func:`progress_bar`); with ``--quiet`` it does nothing, without importing rich."""
    if quiet:
        yield lambda _n: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn

    columns = (TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with progress_bar(quiet, *columns) as progress:
        task = progress.add_task(label, total=total)
        yield lambda n: progress.advance(task, n)


def database_url(ctx: click.Context) -> str | None:
    """The ``--db`` URL given to the group (None: the environment or the default)."""
    url: str | None = ctx.find_root().obj["url"]
    return url


@contextmanager
def open_store(ctx: click.Context, **options: Any) -> Iterator[Store]:
    """The store at ``--db``; library errors become one-line messages, not tracebacks."""
    from .. import connect

    options.setdefault("read_urls", ctx.find_root().obj.get("read_urls", ()))
    try:
        store = connect(database_url(ctx), **options)
    except RepositoryError as error:
        raise click.ClickException(str(error)) from None
    try:
        yield store
    except RepositoryError as error:
        raise click.ClickException(str(error)) from None
    finally:
        store.close()


@contextmanager
def open_read_engine(ctx: click.Context) -> Iterator[Engine]:
    """An engine to read with: a usable standby of ``--read-db``, else the ``--db`` one."""
    if not ctx.find_root().obj.get("read_urls"):
        with open_engine(ctx) as engine:
            yield engine
        return
    with open_store(ctx) as store:
        try:
            engine = store.router.engine()
        except RepositoryError as error:
            raise click.ClickException(str(error)) from None
        yield engine


@contextmanager
def open_engine(ctx: click.Context) -> Iterator[Engine]:
    """An engine for the db commands; failures become one-line errors, not tracebacks."""
    from ..engine import make_engine
    from ..validation import strip_credentials

    try:
        engine = make_engine(database_url(ctx))
    except Exception as error:
        raise click.ClickException(f"invalid database URL: {error}") from None
    try:
        yield engine
    except RepositoryError as error:  # migrate translates driver errors (unit_of_work)
        where = strip_credentials(engine.url)
        raise click.ClickException(f"database {where}: {error}") from None
    finally:
        engine.dispose()

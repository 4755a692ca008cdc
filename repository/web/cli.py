"""``dicom-repo serve``: run the DICOMweb server with uvicorn, in one or more worker processes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from ..errors import RepositoryError
from .settings import (
    DEFAULT_DB_SLOTS,
    DEFAULT_MAX_BODY,
    DEFAULT_MAX_RESULTS_ALL,
    DEFAULT_REQUEST_TIMEOUT,
    TOKEN_ENV,
    Settings,
)


def _token(token_file: Path | None) -> str | None:
    if token_file is None:
        return os.environ.get(TOKEN_ENV) or None
    token = token_file.read_text().strip()
    if not token:
        raise click.BadParameter(f"{token_file} is empty", param_hint="--token-file")
    return token


def _check_database(url: str | None, read_urls: tuple[str, ...] | None) -> None:
    from .. import connect

    try:
        with connect(url, read_urls=read_urls) as store:
            if store.router.primary_is_read_only():
                click.echo("warning: the database is a hot standby: serving reads only "
                           "(STOW-RS answers 503)", err=True)  # fmt: skip
    except RepositoryError as error:
        raise click.ClickException(str(error)) from None


WORKER_HEALTHCHECK_SECONDS = 120
"""How long a worker may take to start (and to answer a health check) before uvicorn replaces it."""


@click.command()
@click.option(
    "--db",
    "db_url",
    default=None,
    metavar="URL",
    help="Database URL (default: the --db given to dicom-repo, $DICOM_REPO_URL, "
    "else the SQLite default).",
)
@click.option(
    "--read-db",
    "read_urls",
    multiple=True,
    metavar="URL",
    help="A hot standby of --db to read from (repeat; default: the --read-db given to "
    "dicom-repo, $DICOM_REPO_READ_URLS). Writes always go to --db.",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on (only this machine by default).",
)
@click.option(
    "--port",
    default=8042,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="TCP port to listen on.",
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 256),
    help="Worker processes (all share the database).",
)
@click.option(
    "--storage",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder STOW-RS writes received files to (without it, STOW-RS is refused).",
)
@click.option("--read-only", is_flag=True, help="Refuse STOW-RS and DELETE (403).")
@click.option(
    "--cors-origin",
    "cors_origins",
    multiple=True,
    metavar="ORIGIN",
    help="Allow cross-origin requests from ORIGIN (repeat; CORS is off without it).",
)
@click.option(
    "--token-file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help=f"File holding the bearer token every request must carry (else ${TOKEN_ENV}).",
)
@click.option(
    "--max-body",
    default=DEFAULT_MAX_BODY,
    show_default=True,
    type=click.IntRange(1),
    help="Largest request body accepted, in bytes (413 beyond).",
)
@click.option(
    "--viewer",
    "viewer_dir",
    default=None,
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="A built OHIF Viewer (its dist/ folder) to serve at / with its app-config.js.",
)
@click.option(
    "--db-slots",
    default=DEFAULT_DB_SLOTS,
    show_default=True,
    type=click.IntRange(1, 1000),
    help="Database connections per worker, and so requests using the database at once "
    "(others wait, see --queue-timeout).",
)
@click.option(
    "--queue-timeout",
    default=30.0,
    show_default=True,
    type=click.FloatRange(0.1),
    help="Seconds a request waits for a database slot before 503 with Retry-After.",
)
@click.option(
    "--max-results-all",
    default=DEFAULT_MAX_RESULTS_ALL,
    show_default=True,
    type=click.IntRange(1),
    help="QIDO-RS results per request with includefield=all (a larger limit is 400).",
)
@click.option(
    "--body-timeout",
    default=60.0,
    show_default=True,
    type=click.FloatRange(0.1),
    help="Seconds a request body may send nothing before 408 (its upload is dropped).",
)
@click.option(
    "--request-timeout",
    default=DEFAULT_REQUEST_TIMEOUT,
    show_default=True,
    type=click.FloatRange(0),
    help="Seconds a whole request may take (body and answer included; /changes/stream "
    "exempt) before it is answered 503, or its answer cut off, and its database work "
    "cancelled; 0: no limit.",
)
@click.option(
    "--shutdown-timeout",
    default=30,
    show_default=True,
    type=click.IntRange(0),
    help="On SIGTERM, seconds requests in progress get to finish before they are cancelled.",
)
@click.option("--access-log", is_flag=True, help="Log every request as a JSON line (stderr).")
@click.option(
    "--keep-json/--no-keep-json",
    default=False,
    show_default=True,
    help="Keep the WADO-RS DICOM JSON of instances stored by STOW-RS at once (else on their "
    "first metadata request).",
)
@click.pass_context
def serve(ctx: click.Context, /, db_url: str | None, read_urls: tuple[str, ...], host: str,
          port: int, workers: int, storage: Path | None, read_only: bool,
          cors_origins: tuple[str, ...], token_file: Path | None, max_body: int,
          viewer_dir: Path | None, keep_json: bool, shutdown_timeout: int,
          **tuning: Any) -> None:  # fmt: skip
    """Serve the repository over DICOMweb (QIDO-RS, WADO-RS, STOW-RS) at /dicom-web."""
    import uvicorn

    if viewer_dir is not None and not (viewer_dir / "index.html").is_file():
        raise click.BadParameter(f"{viewer_dir} has no index.html", param_hint="--viewer")
    url = db_url or (ctx.obj or {}).get("url")
    reads = read_urls or (ctx.obj or {}).get("read_urls") or None
    _check_database(url, reads)
    token = _token(token_file)
    if host not in ("127.0.0.1", "localhost", "::1") and not token:
        click.echo(f"warning: listening on {host} without a bearer token", err=True)
    settings = Settings(
        url=url,
        read_urls=reads,
        storage=storage.resolve() if storage else None,
        read_only=read_only,
        cors_origins=cors_origins,
        token=token,
        max_body=max_body,
        viewer_dir=viewer_dir.resolve() if viewer_dir else None,
        keep_json=keep_json,
        **tuning,
    )
    os.environ.update(settings.to_env())
    click.echo(f"DICOMweb root: http://{host}:{port}/dicom-web", err=True)
    uvicorn.run(
        "repository.web:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        proxy_headers=True,
        log_level="warning",
        # uvicorn kills a worker that does not answer its health check in time (5 s by
        # default) and starts another: on a loaded machine importing the application takes
        # longer than that, and the workers were replaced forever without serving a request.
        timeout_worker_healthcheck=WORKER_HEALTHCHECK_SECONDS,
        timeout_graceful_shutdown=shutdown_timeout,
    )

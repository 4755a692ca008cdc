"""``dicom-repo changes``: print the change log, and follow it as other processes commit."""

from __future__ import annotations

import queue
from typing import Any

import click
import orjson

from ..errors import FeedGapError
from ..events import ALL_EVENTS, Event
from ..store import Store
from ._shared import json_option, open_store

PAGE = 1000
_SAID_ELSEWHERE = {"StudyInstanceUID", "SeriesInstanceUID", "data_source", "madeInClient", "seq"}
_TOO_LONG = {"seriesSummaryMetadata"}  # one line per change: --json prints the summaries


def event_json(event: Event) -> dict[str, Any]:
    """One change as the JSON object ``changes --json`` prints."""
    return {
        "seq": event.seq,
        "kind": str(event.kind),
        "study_instance_uid": event.study_instance_uid,
        "series_instance_uid": event.series_instance_uid,
        "data_source": event.data_source,
        "made_in_client": event.made_in_client,
        "payload": dict(event.payload),
    }


def _echo(event: Event, as_json: bool) -> None:
    if as_json:
        click.echo(orjson.dumps(event_json(event)).decode())
        return
    detail = {k: v for k, v in event.payload.items() if k not in _SAID_ELSEWHERE | _TOO_LONG}
    click.echo(
        f"{event.seq}\t{event.kind}\t{event.study_instance_uid}\t"
        f"{event.series_instance_uid or '-'}\t{event.data_source}"
        f"{' (made in client)' if event.made_in_client else ''}\t"
        f"{orjson.dumps(detail).decode() if detail else ''}"
    )


@click.group("changes", invoke_without_command=True)
@click.option("--since", type=click.IntRange(min=0), default=0, show_default=True,
              metavar="SEQ", help="Print the changes after this seq.")  # fmt: skip
@click.option("--limit", type=click.IntRange(min=1), default=None, metavar="N",
              help="Print at most N changes (not with --follow).")  # fmt: skip
@click.option("--follow", "-f", is_flag=True,
              help="Keep printing changes as any process commits them (Ctrl-C stops).")  # fmt: skip
@json_option(help="One JSON object per line.")
@click.option("--poll-interval", type=click.FloatRange(min=0, min_open=True), default=None,
              metavar="SECONDS", help="With --follow: how often to read the change log "
              "unprompted (SQLite: 0.2; PostgreSQL, which is notified: 10).")  # fmt: skip
@click.pass_context
def changes(
    ctx: click.Context,
    since: int,
    limit: int | None,
    follow: bool,
    as_json: bool,
    poll_interval: float | None,
) -> None:
    """Print committed changes in commit order (seq, kind, study, series, data source, detail).

    The change log is durable: a consumer that remembers the last seq it handled resumes with
    --since SEQ and misses nothing; if those changes were compacted away (changes compact) it
    is told so (exit 1) and should re-read the state.
    """
    if ctx.invoked_subcommand is not None:
        return
    if follow and limit is not None:
        raise click.UsageError("--limit cannot be combined with --follow")
    with open_store(ctx, poll_interval=poll_interval) as store:
        if follow:
            _follow(store, since, as_json)
        else:
            _print(store, since, limit, as_json)


def _print(store: Store, since: int, limit: int | None, as_json: bool) -> None:
    left = limit
    while left is None or left > 0:
        page = store.changes(since=since, limit=min(PAGE, left or PAGE))
        for event in page:
            _echo(event, as_json)
        if not page:
            return
        since = page[-1].seq
        if left is not None:
            left -= len(page)


def _follow(store: Store, since: int, as_json: bool) -> None:
    # Callbacks run in the store's follower thread; printing happens here, so Ctrl-C and a
    # closed pipe end this loop cleanly.
    received: queue.Queue[Event | FeedGapError] = queue.Queue()
    store.subscribe(ALL_EVENTS, received.put, include_made_in_client=True, since=since,
                    on_gap=received.put)  # fmt: skip
    try:
        while True:
            try:
                event = received.get(timeout=0.5)
            except queue.Empty:
                continue
            if isinstance(event, FeedGapError):
                raise click.ClickException(str(event))
            _echo(event, as_json)
    except KeyboardInterrupt:
        pass


@changes.command("compact")
@click.option("--keep-days", type=click.FloatRange(min=0), default=None, metavar="N",
              help="Delete the changes older than N days.")  # fmt: skip
@click.option("--before", "before_seq", type=click.IntRange(min=1), default=None, metavar="SEQ",
              help="Delete the changes with a seq below SEQ.")  # fmt: skip
@click.pass_context
def compact(ctx: click.Context, keep_days: float | None, before_seq: int | None) -> None:
    """Delete old changes from the change log (the newest is always kept).

    A consumer whose position is older than what is left gets an error (HTTP 410 from the
    server) rather than a silent gap, and resyncs by re-reading the state.
    """
    if (keep_days is None) == (before_seq is None):
        raise click.UsageError("give one of --keep-days N and --before SEQ")
    with open_store(ctx) as store:
        done = store.compact_changes(before_seq=before_seq, keep_days=keep_days)
    click.echo(f"removed {done.removed} changes; the change log now starts after seq "
               f"{done.through_seq}")  # fmt: skip

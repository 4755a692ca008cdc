"""Writing a streamed query result as a table, CSV or JSON, row by row.

None of the formats holds the whole result: CSV and JSON write each row as it arrives, the
table is printed in pages of :data:`PAGE` rows.
"""

from __future__ import annotations

import csv
import datetime as dt
import decimal
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import islice
from typing import Any, TextIO

import orjson
from rich import box
from rich.console import Console
from rich.table import Table

FORMATS = ("table", "csv", "json")
PAGE = 1000
"""Rows per printed table page."""


def _plain(value: Any) -> Any:
    """A JSON-friendly value: exact decimals (PostgreSQL sums) as int or float."""
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(_plain(value))
    return str(value)


def write_csv(out: TextIO, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """CSV with a header line; NULL is an empty field, dates are ISO 8601."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_text(v) for v in row])


def write_json(out: TextIO, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """A JSON array of objects (column -> value), one object per line, written as it streams."""
    out.write("[")
    separator = "\n"
    for row in rows:
        obj = dict(zip(columns, row, strict=True))
        out.write(separator + orjson.dumps(obj, default=_plain).decode())
        separator = ",\n"
    out.write("\n]\n")


def write_table(console: Console, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Aligned columns for a terminal, printed a page at a time; NULL shows as empty."""
    pages = _pages(iter(rows))
    first = True
    for page in pages:
        table = Table(*columns, box=box.SIMPLE_HEAD, show_header=first, pad_edge=False)
        for row in page:
            table.add_row(*(_text(v) for v in row))
        console.print(table)
        first = False
    if first:  # no rows: still show the columns
        console.print(Table(*columns, box=box.SIMPLE_HEAD, pad_edge=False))


def _pages(rows: Iterator[Sequence[Any]]) -> Iterator[list[Sequence[Any]]]:
    while page := list(islice(rows, PAGE)):
        yield page


WRITERS: dict[str, Callable[..., None]] = {"csv": write_csv, "json": write_json}
"""The writers that take a text stream (``table`` takes a rich Console)."""

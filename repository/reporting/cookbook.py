"""The cookbook section of ``docs/reporting.md``, rendered from the report registry.

``python -m repository.reporting.cookbook docs/reporting.md`` rewrites the part of the file
between the two markers; a test fails when the file and the registry disagree, so the SQL in the
docs is always the SQL the tests run.
"""

from __future__ import annotations

import sys
from pathlib import Path

from .reports import REPORTS, Report

START = "<!-- cookbook:start (generated from repository/reporting/reports.py) -->"
END = "<!-- cookbook:end -->"


def _command(report: Report) -> str:
    required = [f" --param {k}=..." for k, v in report.params.items() if v is None]
    return f"dicom-repo report {report.name}{''.join(required)}"


def render_report(number: int, report: Report) -> str:
    """One cookbook entry: the question, notes, parameters, SQL and the command running it."""
    lines = [f"### {number}. {report.question}", ""]
    if report.notes:
        lines += [report.notes, ""]
    if report.params:
        described = ", ".join(
            f"`{k}` (required)" if v is None else f"`{k}` (default `{v}`)"
            for k, v in report.params.items()
        )
        lines += [f"Parameters: {described}.", ""]
    if report.variants:
        for dialect in ("sqlite", "postgresql"):
            label = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}[dialect]
            lines += [f"{label}:", "", "```sql", report.sql_for(dialect), "```", ""]
    else:
        lines += ["```sql", report.sql_for("sqlite"), "```", ""]
    lines += ["```sh", _command(report), "```", ""]
    return "\n".join(lines)


def render() -> str:
    """The whole generated section, markers included."""
    body = "\n".join(render_report(n, r) for n, r in enumerate(REPORTS, start=1))
    return f"{START}\n\n{body}{END}"


def update(path: Path) -> bool:
    """Rewrite the generated section of ``path``; True if the file changed."""
    old = path.read_text(encoding="utf-8")
    head, _, rest = old.partition(START)
    _, _, tail = rest.partition(END)
    new = head + render() + tail
    if new != old:
        path.write_text(new, encoding="utf-8")
    return new != old


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        print(f"{arg}: {'updated' if update(Path(arg)) else 'up to date'}")

"""SQL reporting: the views made by the migrations, the cookbook of named reports, read-only SQL.

The views ``v_study``, ``v_series`` and ``v_instance`` (migration 0002) flatten the repository
for SQL; :data:`REPORTS` holds the cookbook's questions and their SQL; :func:`read_only_query`
runs one read-only statement and streams its rows. See ``docs/reporting.md``.
"""

from __future__ import annotations

from .query import QueryResult, check_statement, read_only_query
from .reports import REPORTS, Report, get_report

__all__ = ["REPORTS", "QueryResult", "Report", "check_statement", "get_report", "read_only_query"]

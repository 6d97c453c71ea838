"""CSV exports: cells a spreadsheet cannot run as formulas.

A text cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return would be
evaluated by Excel, LibreOffice or Google Sheets (CSV/formula injection); such cells are
prefixed with ``'``, which spreadsheets show as plain text. Numbers are written as they are.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from datetime import datetime

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def cell(value: object) -> str:
    """A CSV cell; text that a spreadsheet would run as a formula is quoted with '."""
    if value is None:
        return ""
    if isinstance(value, str):
        return "'" + value if value[:1] in _FORMULA_STARTS else value
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def to_csv(header: Sequence[str], rows: Iterable[Iterable[object]]) -> str:
    """A CSV document (CRLF line ends): the header, then one guarded row per item."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(cell(v) for v in row)
    return out.getvalue()


__all__ = ["cell", "to_csv"]

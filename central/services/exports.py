"""Tables of the supervision pages as CSV and XLSX files (issue 8 item 7).

A page hands over its tables as :class:`Table` (title, headers, rows of plain values); CSV puts
them one after another, each under its title, in UTF-8 with a byte-order mark so Excel reads the
Chinese correctly; XLSX gives each table its own sheet.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from openpyxl import Workbook

__all__ = ["Cell", "Table", "FORMATS", "csv_bytes", "xlsx_bytes", "export"]

Cell = str | int | float | date | datetime | None
"""What a table cell may hold."""

FORMATS = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
"""The export formats and their media types."""

_SHEET_FORBIDDEN = str.maketrans({c: " " for c in "[]:*?/\\"})


@dataclass(frozen=True)
class Table:
    """One table of a page: a title, its column headers and its rows."""

    title: str
    headers: Sequence[str]
    rows: Sequence[Sequence[Cell]] = field(default_factory=list)


def _text(value: Cell) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1 else f"{value:.2f}".rstrip("0").rstrip(".")
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="minutes")
    return str(value)


def csv_bytes(tables: Sequence[Table]) -> bytes:
    """The tables as one CSV file (UTF-8 with BOM), each under its title, a blank line between."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for n, table in enumerate(tables):
        if n:
            writer.writerow([])
        if len(tables) > 1:
            writer.writerow([table.title])
        writer.writerow(table.headers)
        writer.writerows([_text(v) for v in row] for row in table.rows)
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def _sheet_title(title: str, taken: set[str]) -> str:
    base = title.translate(_SHEET_FORBIDDEN)[:28] or "表"
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}{n}"
    taken.add(name)
    return name


def _xlsx_value(value: Cell) -> Cell:
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.replace(tzinfo=None)  # Excel has no time zones; times are shown as given
    return value


def xlsx_bytes(tables: Sequence[Table]) -> bytes:
    """The tables as an XLSX workbook, one sheet per table, headers in the first row."""
    book = Workbook()
    taken: set[str] = set()
    for n, table in enumerate(tables):
        sheet = book.active if n == 0 else book.create_sheet()
        sheet.title = _sheet_title(table.title, taken)
        sheet.append(list(table.headers))
        for row in table.rows:
            sheet.append([_xlsx_value(v) for v in row])
        for column, header in enumerate(table.headers, start=1):
            letter = sheet.cell(row=1, column=column).column_letter
            sheet.column_dimensions[letter].width = max(10, 2 * len(header) + 2)
        sheet.freeze_panes = "A2"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def export(tables: Sequence[Table], fmt: str) -> bytes:
    """The tables in ``fmt`` (one of ``FORMATS``)."""
    if fmt == "csv":
        return csv_bytes(tables)
    if fmt == "xlsx":
        return xlsx_bytes(tables)
    raise ValueError(f"unknown export format {fmt!r}")

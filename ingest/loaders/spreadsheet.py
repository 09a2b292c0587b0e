"""Spreadsheets (.xlsx by openpyxl, .ods by odfpy): one run of segments per sheet, each row read like a CSV row
("column: value; ...", the header being the sheet's first non-empty row), `CSV_ROWS_PER_SEGMENT` rows a segment.
The section and `sheet` locator are the sheet's name; start/end lines are the sheet's row numbers."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterable, Iterator

from ingest.loaders.archives import checked_bytes
from ingest.loaders.base import Loader, default_title, short_reason
from ingest.loaders.segments import Joiner
from ingest.loaders.tabular import CSV_ROWS_PER_SEGMENT
from ingest.types import Document, LoadError

Row = tuple[int, list[str]]  # (1-based row number, cell texts)


class SpreadsheetLoader(Loader):
    """Formulas are read as their cached values (what the user last saw); hidden sheets are read too."""

    suffixes = frozenset({".xlsx", ".xlsm", ".ods"})

    def load(self, data: bytes, rel: str, suffix: str) -> list[Document]:
        kind = "ods" if suffix == ".ods" else "xlsx"
        checked_bytes(data, kind.upper())  # encrypted, legacy, corrupt or a zip bomb: refused before parsing
        try:
            sheets = list(_ods_sheets(data) if kind == "ods" else _xlsx_sheets(data))
        except LoadError:
            raise
        except Exception as exc:  # noqa: BLE001 - openpyxl/odfpy raise many types on broken packages
            raise LoadError(f"corrupt {kind.upper()}: {short_reason(exc)}") from exc
        joiner = Joiner()
        for name, rows in sheets:
            add_sheet(joiner, name, rows)
        if not joiner.segments:
            raise LoadError(f"no text in {kind.upper()} (every sheet is empty)")
        return [Document(doc_id=rel, title=default_title(rel), kind=kind, segments=joiner.segments,
                         extra={"sheets": len(sheets)})]


def add_sheet(joiner: Joiner, name: str, rows: Iterable[Row]) -> None:
    """Add one sheet's rows to `joiner`, grouped, each carrying its column names."""
    rows = iter(rows)
    header = next(rows, None)
    if header is None:
        return
    header_row, header_cells = header
    columns = [cell or f"column {i + 1}" for i, cell in enumerate(header_cells)]
    meta = {"section": name, "extra": {"sheet": name}}
    group: list[str] = []
    first = last = header_row
    for number, cells in rows:
        parts = [f"{columns[i] if i < len(columns) else f'column {i + 1}'}: {value}"
                 for i, value in enumerate(cells) if value]
        if not parts:
            continue
        if not group:
            first = number
        group.append("; ".join(parts))
        last = number
        if len(group) == CSV_ROWS_PER_SEGMENT:
            joiner.add("\n".join(group), start_line=first, end_line=last, **meta)
            group = []
    if group:
        joiner.add("\n".join(group), start_line=first, end_line=last, **meta)
    elif first == header_row:  # a header and no rows: keep the header so the sheet is findable
        joiner.add("columns: " + ", ".join(columns), start_line=header_row, end_line=header_row, **meta)


def _cell_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, dt.datetime) and value.time() == dt.time(0):
        value = value.date()
    return " ".join(str(value).split())


#: Cells read from one file at most, repeated cells counted: the work follows the cells a file really holds, never
#: its declared dimensions (an XLSX claiming A1:XFD1048576) or repeat counts (an ODS cell repeated 16384 times
#: in a row repeated a million times).
MAX_CELLS = 2_000_000
#: Cell positions scanned (empty ones included) at most: bounds rows padded out to a far column.
MAX_SCANNED = 50_000_000
#: Columns of a row (Excel's and LibreOffice's limit).
MAX_COLUMNS = 16_384


class _Budget:
    def __init__(self, kind: str):
        self.kind, self.cells, self.scanned = kind, 0, 0

    def spend(self, cells: int, scanned: int = 0) -> None:
        self.cells += cells
        self.scanned += scanned
        if self.cells > MAX_CELLS:
            raise LoadError(f"{self.kind} holds over {MAX_CELLS:,} cells (repeated cells counted), over the limit")
        if self.scanned > MAX_SCANNED:
            raise LoadError(f"{self.kind} spreads its cells over more than {MAX_SCANNED:,} positions, over the limit")


def _non_empty(rows: Iterable[tuple[int, list]], budget: _Budget) -> Iterator[Row]:
    for number, values in rows:
        if not values:
            continue
        cells = [_cell_text(v) for v in values]
        while cells and not cells[-1]:
            cells.pop()
        budget.spend(sum(1 for cell in cells if cell), len(values))
        if cells:
            yield number, cells


def _xlsx_sheets(data: bytes) -> Iterator[tuple[str, list[Row]]]:
    import openpyxl

    book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    budget = _Budget("XLSX")
    try:
        for sheet in book.worksheets:
            if not hasattr(sheet, "iter_rows"):  # a chart sheet
                continue
            start = sheet.min_row or 1
            # Rows as stored, each as long as its last cell: not padded out to the declared dimensions.
            sheet.reset_dimensions()
            rows = enumerate(sheet.iter_rows(min_row=start, values_only=True), start)
            yield sheet.title, list(_non_empty(rows, budget))
    finally:
        book.close()


def _ods_sheets(data: bytes) -> Iterator[tuple[str, list[Row]]]:
    from odf.namespaces import TABLENS, TEXTNS
    from odf.opendocument import load

    document = load(io.BytesIO(data))
    budget = _Budget("ODS")

    def text_of(node) -> str:
        out = []
        for child in node.childNodes:
            if child.nodeType == child.TEXT_NODE:
                out.append(child.data)
            elif child.qname == (TEXTNS, "s"):
                out.append(" ")
            else:
                out.append(text_of(child))
                if child.qname == (TEXTNS, "p"):
                    out.append("\n")
        return "".join(out)

    def repeat(node, name: str) -> int:
        try:
            return max(1, int(node.getAttrNS(TABLENS, name) or 1))
        except ValueError:
            return 1

    for table in document.spreadsheet.getElementsByType(_odf_table()):
        name = table.getAttrNS(TABLENS, "name") or "Sheet"
        rows: list[Row] = []
        number = 0
        for row in table.getElementsByType(_odf_row()):
            # Empty cells only move the column on (a trailing run is never written out); a repeated cell with
            # text is written out, against the file's cell budget.
            cells: list[str] = []
            empty = 0
            for cell in row.childNodes:
                if cell.qname not in ((TABLENS, "table-cell"), (TABLENS, "covered-table-cell")):
                    continue
                times = repeat(cell, "number-columns-repeated")
                text = " ".join(text_of(cell).split())
                if not text:
                    empty += times
                    continue
                room = MAX_COLUMNS - len(cells)
                cells.extend([""] * min(empty, room))
                empty = 0
                times = min(times, MAX_COLUMNS - len(cells))
                budget.spend(times, times)
                cells.extend([text] * times)
            times = repeat(row, "number-rows-repeated")
            if not cells:
                number += times  # empty rows: counted, not expanded
                continue
            for _ in range(times):
                number += 1
                budget.spend(len(cells))
                rows.append((number, cells))
        yield name, rows


def _odf_table():
    from odf.table import Table

    return Table


def _odf_row():
    from odf.table import TableRow

    return TableRow

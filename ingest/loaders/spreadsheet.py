"""Spreadsheets (.xlsx by openpyxl, .ods by odfpy): one run of segments per sheet, each row read like a CSV row
("column: value; ...", the header being the sheet's first non-empty row), `CSV_ROWS_PER_SEGMENT` rows a segment.
The section and `sheet` locator are the sheet's name; start/end lines are the sheet's row numbers."""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from collections.abc import Iterable, Iterator

from ingest.loaders.base import Loader, default_title, not_zip_reason, short_reason
from ingest.loaders.segments import Joiner
from ingest.loaders.tabular import CSV_ROWS_PER_SEGMENT
from ingest.types import Document, LoadError

Row = tuple[int, list[str]]  # (1-based row number, cell texts)


class SpreadsheetLoader(Loader):
    """Formulas are read as their cached values (what the user last saw); hidden sheets are read too."""

    suffixes = frozenset({".xlsx", ".xlsm", ".ods"})

    def load(self, data: bytes, rel: str, suffix: str) -> list[Document]:
        kind = "ods" if suffix == ".ods" else "xlsx"
        if not zipfile.is_zipfile(io.BytesIO(data)):
            raise LoadError(not_zip_reason(data, kind.upper()))
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


def _non_empty(rows: Iterable[tuple[int, list]]) -> Iterator[Row]:
    for number, values in rows:
        cells = [_cell_text(v) for v in values]
        while cells and not cells[-1]:
            cells.pop()
        if cells:
            yield number, cells


def _xlsx_sheets(data: bytes) -> Iterator[tuple[str, list[Row]]]:
    import openpyxl

    book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    try:
        for sheet in book.worksheets:
            if not hasattr(sheet, "iter_rows"):  # a chart sheet
                continue
            start = sheet.min_row or 1
            rows = enumerate(sheet.iter_rows(values_only=True), start)
            yield sheet.title, list(_non_empty(rows))
    finally:
        book.close()


def _ods_sheets(data: bytes) -> Iterator[tuple[str, list[Row]]]:
    from odf.namespaces import TABLENS, TEXTNS
    from odf.opendocument import load

    document = load(io.BytesIO(data))
    repeat_cap = 1000  # an empty trailing row/column is often "repeated" a million times

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

    for table in document.spreadsheet.getElementsByType(_odf_table()):
        name = table.getAttrNS(TABLENS, "name") or "Sheet"
        rows = []
        number = 0
        for row in table.getElementsByType(_odf_row()):
            row_repeat = min(int(row.getAttrNS(TABLENS, "number-rows-repeated") or 1), repeat_cap)
            cells: list[str] = []
            for cell in row.childNodes:
                if cell.qname not in ((TABLENS, "table-cell"), (TABLENS, "covered-table-cell")):
                    continue
                col_repeat = min(int(cell.getAttrNS(TABLENS, "number-columns-repeated") or 1), repeat_cap)
                cells.extend([text_of(cell).strip()] * col_repeat)
            for _ in range(row_repeat):
                number += 1
                rows.append((number, cells))
        yield name, list(_non_empty(rows))


def _odf_table():
    from odf.table import Table

    return Table


def _odf_row():
    from odf.table import TableRow

    return TableRow

"""CSV and TSV: each row as "column: value; ..." (so a row reads on its own), grouped into segments of
`CSV_ROWS_PER_SEGMENT` rows with their source line numbers."""

from __future__ import annotations

import csv
import io

from ingest.loaders.base import TextLoader, default_title
from ingest.loaders.segments import Joiner
from ingest.types import Document, LoadError

CSV_ROWS_PER_SEGMENT = 20


class TabularLoader(TextLoader):
    """The first non-blank row is the header; a CSV's delimiter is sniffed, a TSV's is the tab."""

    suffixes = frozenset({".csv", ".tsv"})

    def load_text(self, text: str, rel: str, suffix: str) -> Document:
        if suffix == ".tsv":
            dialect: type[csv.Dialect] | csv.Dialect = csv.excel_tab
        else:
            try:
                dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t|")
            except csv.Error:
                dialect = csv.excel
        reader = csv.reader(io.StringIO(text), dialect)
        try:
            header = next(reader, None)
            while header is not None and not any(cell.strip() for cell in header):
                header = next(reader, None)
            if header is None:
                raise LoadError("no text (empty CSV)")
            columns = [" ".join(h.split()) or f"column {i + 1}" for i, h in enumerate(header)]
            header_line = reader.line_num
            joiner = Joiner()
            rows: list[str] = []
            first_line = header_line + 1
            for row in reader:
                line = reader.line_num
                cells = []
                for index, value in enumerate(row):
                    value = " ".join(value.split())
                    if value:
                        name = columns[index] if index < len(columns) else f"column {index + 1}"
                        cells.append(f"{name}: {value}")
                if cells:
                    if not rows:
                        first_line = line - row_lines(row) + 1
                    rows.append("; ".join(cells))
                if len(rows) == CSV_ROWS_PER_SEGMENT:
                    joiner.add("\n".join(rows), start_line=first_line, end_line=line)
                    rows = []
            if rows:
                joiner.add("\n".join(rows), start_line=first_line, end_line=reader.line_num)
        except csv.Error as exc:
            raise LoadError(f"malformed CSV (line {reader.line_num}: {exc})") from exc
        if not joiner.segments:  # a header and no rows: keep the header so the file is findable
            joiner.add("columns: " + ", ".join(columns), start_line=header_line, end_line=header_line)
        return Document(doc_id=rel, title=default_title(rel), kind="csv", segments=joiner.segments,
                        extra={"columns": columns})



def row_lines(row: list[str]) -> int:
    """Source lines a parsed CSV record spans (quoted cells may hold newlines)."""
    return 1 + sum(value.count("\n") for value in row)

"""Tables as Markdown: the one text shape every table-bearing format (DOCX, HTML, PDF, PPTX) is turned into, so
a chunk holding part of a table still reads as a table with its header row (see `ingest.chunking`)."""

from __future__ import annotations


def markdown_table(rows: list[list[str]]) -> str:
    """A Markdown table whose first non-empty row is the header; "" when no cell has text.

    Cells are put on one line and their `|` escaped; short rows are padded so every row has the header's width.
    """
    cleaned = [[" ".join(str(cell or "").split()).replace("|", "\\|") for cell in row] for row in rows]
    cleaned = [row for row in cleaned if any(row)]
    if not cleaned:
        return ""
    width = max(len(row) for row in cleaned)
    cleaned = [row + [""] * (width - len(row)) for row in cleaned]
    lines = [_line(cleaned[0]), _line(["---"] * width)]
    lines.extend(_line(row) for row in cleaned[1:])
    return "\n".join(lines)


def _line(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"

"""Tables in PDF text layers: ruled tables found by pdfplumber, as Markdown, with their place on the page.

Only pages with drawn lines (pdfium counts their path objects, which is cheap) are handed to pdfplumber, so
text-only PDFs pay almost nothing. A "table" with half its cells empty is a chart's gridlines, not a table: its
text stays as lines. The reader (`pdf_text`) puts each table where the lines it covers were.
"""

from __future__ import annotations

import io

from ingest.loaders.pdf_text import PageTable
from ingest.loaders.tables import markdown_table

#: A page needs at least this many drawn paths (a 2x2 ruled table has 6 lines) to be searched for tables.
MIN_PATHS = 6
#: pdfplumber splits words at gaps wider than this share of the type size (its fixed 3 pt glued tight 9 pt text).
X_TOLERANCE_RATIO = 0.15


def ruled_tables(data: bytes, indexes: list[int]) -> dict[int, list[PageTable]]:
    """Page index → the ruled tables on it, for those of `indexes` that hold one with 2+ rows."""
    candidates = _ruled_pages(data, indexes)
    if not candidates:
        return {}
    import pdfplumber

    out: dict[int, list[PageTable]] = {}
    try:
        with pdfplumber.open(io.BytesIO(data)) as pdf:
            for index in candidates:
                tables = _page_tables(pdf.pages[index])
                if tables:
                    out[index] = tables
    except Exception:  # noqa: BLE001 - pdfminer trips on files pdfium reads: keep the plain text layer
        return out
    return out


def _ruled_pages(data: bytes, indexes: list[int]) -> list[int]:
    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_c

    try:
        document = pdfium.PdfDocument(data)
    except Exception:  # noqa: BLE001
        return []
    try:
        ruled = []
        for index in indexes:
            paths = document[index].get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_PATH], max_depth=2)
            if sum(1 for _ in zip(range(MIN_PATHS), paths)) >= MIN_PATHS:
                ruled.append(index)
        return ruled
    finally:
        document.close()



def _page_tables(page) -> list[PageTable]:
    out = []
    for table in page.find_tables():
        if len(table.rows) < 2:
            continue
        rows = table.extract(x_tolerance_ratio=X_TOLERANCE_RATIO)
        cells = [cell for row in rows for cell in row]
        if sum(not (cell or "").strip() for cell in cells) * 2 >= len(cells):
            continue  # a chart's gridlines
        left, top, right, bottom = table.bbox
        out.append(PageTable(left, top, right, bottom, markdown_table(rows)))
    return out

"""Tables in PDF text layers: ruled tables found by pdfplumber become Markdown tables in the page's text.

Only pages with drawn lines (pdfium counts their path objects, which is cheap) are handed to pdfplumber, so
text-only PDFs pay almost nothing. The page text is then rebuilt top to bottom: the text above, between and below
the tables (pdfplumber's `extract_text` of each band) and each table in its place.
"""

from __future__ import annotations

import io

from ingest.loaders.tables import markdown_table

#: A page needs at least this many drawn paths (a 2x2 ruled table has 6 lines) to be searched for tables.
MIN_PATHS = 6


def pages_with_tables(data: bytes, indexes: list[int]) -> dict[int, str]:
    """Page index → the page's text with its tables as Markdown, for those of `indexes` that hold a ruled table."""
    candidates = _ruled_pages(data, indexes)
    if not candidates:
        return {}
    import pdfplumber

    out: dict[int, str] = {}
    try:
        with pdfplumber.open(io.BytesIO(data)) as pdf:
            for index in candidates:
                text = _page_text(pdf.pages[index])
                if text:
                    out[index] = text
    except Exception:  # noqa: BLE001 - pdfminer trips on files pypdf reads: keep the plain text layer
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


def _page_text(page) -> str:
    """The page's text with each table replaced by its Markdown, or "" when no table with 2+ rows is found."""
    tables = [table for table in page.find_tables() if len(table.rows) >= 2]
    if not tables:
        return ""
    tables.sort(key=lambda table: table.bbox[1])
    parts: list[str] = []
    top = 0.0
    for table in tables:
        x0, t_top, x1, t_bottom = table.bbox
        parts.append(_band_text(page, top, t_top))
        parts.append(markdown_table(table.extract()))
        top = max(top, t_bottom)
    parts.append(_band_text(page, top, float(page.height)))
    return "\n\n".join(part for part in parts if part.strip())


def _band_text(page, top: float, bottom: float) -> str:
    if bottom - top < 1:
        return ""
    band = page.crop((0, max(0.0, top), float(page.width), min(float(page.height), bottom)), strict=False)
    return (band.extract_text() or "").strip()

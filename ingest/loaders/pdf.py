"""PDF: the text layer read as a person reads it, page by page, with sections; OCR for scanned pages.

Fallback chain, per file and per page:
1. pdfium (pypdfium2) reads each page's lines with their place and type size (`pdf_layout`); the lines become
   clean paragraphs with a section path, captions, the reference list marked and page furniture dropped
   (`pdf_text`, `pdf_headings`); ruled tables become Markdown tables in place (`pdf_tables`).
2. A page (or file) pdfium cannot read is read by pypdf's `extract_text` and cleaned the same way, without places.
3. A page whose text layer is missing or garbage (`usable_text`) and that holds an image is a scan: it is OCR'd
   from the page rendered by pypdfium2 (`ingest.loaders.ocr`; such segments carry `ocr=True`).

pypdf opens the file first: encrypted files open only with an empty password, and its reasons name what is wrong.
Segments are one per page, section and kind: a chunk never crosses a page, a section, a caption or the references
(`extra`: `caption=True`, `references=True`).
"""

from __future__ import annotations

import io
import re

from ingest.loaders.base import Loader, default_title, short_reason
from ingest.loaders.image import MAX_PIXELS
from ingest.loaders.ocr import (
    NO_ENGINE,
    OCR_DPI,
    ocr_engine,
    ocr_pages_done,
    read_image,
)
from ingest.loaders.pdf_layout import Line, page_lines, text_lines
from ingest.loaders.pdf_tables import ruled_tables
from ingest.loaders.pdf_text import Paragraph, read_document
from ingest.loaders.segments import Joiner
from ingest.types import Document, LoadError


class PdfLoader(Loader):
    """Blank pages are skipped; one unreadable page does not sink the file."""

    suffixes = frozenset({".pdf"})

    def load(self, data: bytes, rel: str, suffix: str) -> list[Document]:
        import logging

        from pypdf import PdfReader

        # pypdf logs every repairable oddity of a file; the reason a file fails is reported through LoadError instead.
        logging.getLogger("pypdf").setLevel(logging.ERROR)

        try:
            reader = PdfReader(io.BytesIO(data))
            if reader.is_encrypted:
                try:
                    opened = reader.decrypt("")
                except Exception as exc:
                    raise LoadError(f"encrypted PDF (cannot decrypt: {exc})") from exc
                if not opened:
                    raise LoadError("encrypted PDF (password required)")
            pages = reader.pages
            n_pages = len(pages)
        except LoadError:
            raise
        except Exception as exc:
            raise LoadError(f"corrupt PDF: {short_reason(exc)}") from exc

        lines, failures, last_error = _read_lines(data, pages)
        texts = ["\n".join(line.text for line in page) for page in lines]
        scanned = [i for i, text in enumerate(texts) if not usable_text(text)]
        ocr_texts, ocr_missing = _ocr_pages(data, scanned) if scanned else ({}, False)
        for index, text in ocr_texts.items():
            lines[index] = text_lines(text) if text.strip() else []
        tables = ruled_tables(data, [i for i, text in enumerate(texts) if i not in ocr_texts and text])
        title, paragraphs = read_document(lines, tables)
        segments = _segments(paragraphs, set(ocr_texts))
        if not segments:
            if failures and last_error is not None:
                raise LoadError(f"corrupt PDF: {short_reason(last_error)}")
            if ocr_missing:
                raise LoadError(f"PDF has no text layer (scanned?) and {NO_ENGINE}")
            raise LoadError("PDF has no text layer (scanned?)")
        return [Document(doc_id=rel, title=_pdf_title(reader) or title or default_title(rel), kind="pdf",
                         segments=segments, extra={"pages": n_pages})]


def _read_lines(data: bytes, pages) -> tuple[list[list[Line]], int, Exception | None]:
    """Each page's lines: by pdfium, else (file or page it cannot read) by pypdf; [] for an unreadable page.
    Returns the lines, how many pages neither could read, and the last error."""
    import pypdfium2 as pdfium

    n_pages = len(pages)
    try:
        document = pdfium.PdfDocument(data)
    except Exception:  # noqa: BLE001 - pypdf opened it; pdfium may still refuse (e.g. some encryptions)
        document = None
    out: list[list[Line]] = []
    failures, last_error = 0, None
    try:
        for index in range(n_pages):
            lines = _pdfium_lines(document, index)
            if lines is not None:
                out.append(lines)
                continue
            try:
                out.append(text_lines((pages[index].extract_text() or "").replace("\x00", "")))
            except Exception as exc:  # noqa: BLE001 - one unreadable page does not sink the file
                failures, last_error = failures + 1, exc
                out.append([])
    finally:
        if document is not None:
            document.close()
    return out, failures, last_error


def _pdfium_lines(document, index: int) -> list[Line] | None:
    """The page's lines by pdfium, or None when pdfium cannot read it (pypdf is tried next)."""
    if document is None or index >= len(document):
        return None
    try:
        return page_lines(document[index])
    except Exception:  # noqa: BLE001 - any pdfium failure on one page falls back to pypdf for that page
        return None


def _segments(paragraphs: list[Paragraph], ocr_pages: set[int]) -> list:
    """Consecutive paragraphs of one page, section and kind joined into one segment (blank lines between)."""
    joiner = Joiner()
    group: list[Paragraph] = []

    def key(p: Paragraph):
        return p.page, p.section, p.kind == "caption", p.references

    def flush() -> None:
        if group:
            first = group[0]
            extra = {"ocr": True} if first.page in ocr_pages else {}
            if first.kind == "caption":
                extra["caption"] = True
            if first.references:
                extra["references"] = True
            joiner.add("\n\n".join(p.text for p in group), page=first.page + 1, section=first.section, extra=extra)
            group.clear()

    for paragraph in paragraphs:
        if group and key(group[-1]) != key(paragraph):
            flush()
        group.append(paragraph)
    flush()
    return joiner.segments


def usable_text(text: str) -> bool:
    """Whether a page's text layer is worth keeping: some words, mostly letters and digits, few broken glyphs."""
    visible = [ch for ch in text if not ch.isspace()]
    if len(visible) < 20:
        return False
    alnum = sum(ch.isalnum() for ch in visible)
    broken = text.count("\ufffd") + len(re.findall(r"\(cid:\d+\)", text)) * 6
    return alnum >= 0.5 * len(visible) and broken <= 0.05 * len(visible)


def _ocr_pages(data: bytes, indexes: list[int]) -> tuple[dict[int, str], bool]:
    """OCR text of the given pages that hold an image, and whether OCR was needed but no engine is installed.
    Pages done of those to read are reported as they go (`ocr_pages_done`)."""
    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_c

    out: dict[int, str] = {}
    try:
        document = pdfium.PdfDocument(data)
    except Exception:  # noqa: BLE001 - pypdf read it; pdfium may still refuse (e.g. some encryptions)
        return out, False
    try:
        scans, too_big = [], []
        for index in indexes:  # blank or vector-only pages have nothing to read
            sizes = [image.get_px_size()
                     for image in document[index].get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_IMAGE], max_depth=2)]
            if sizes:
                # Rendering decodes every image whole, whatever the page size: a 35,000 px JBIG2 scan took 2 GB.
                (too_big if max(w * h for w, h in sizes) > MAX_PIXELS else scans).append((index, sizes))
        if not scans and too_big:
            index, sizes = too_big[0]
            width, height = max(sizes, key=lambda size: size[0] * size[1])
            raise LoadError(f"PDF has no text layer (scanned?) and page {index + 1}'s image is {width:,} x "
                            f"{height:,} pixels, over the {MAX_PIXELS / 1e6:.0f} MP limit for OCR")
        if not scans:
            return out, False
        engine = ocr_engine()
        if engine is None:
            return out, True
        ocr_pages_done(0, len(scans))
        for done, (index, _) in enumerate(scans, 1):
            page = document[index]
            image = page.render(scale=ocr_scale(*page.get_size()), grayscale=True).to_pil()
            out[index] = read_image(engine, image)
            ocr_pages_done(done, len(scans))
        return out, False
    finally:
        document.close()


def ocr_scale(width_pt: float, height_pt: float) -> float:
    """The render scale for OCR: `OCR_DPI`, less for a page so big it would exceed `MAX_PIXELS` (a PDF page may
    be up to 200 inches a side)."""
    scale = OCR_DPI / 72
    area = max(1.0, width_pt * height_pt)
    return min(scale, (MAX_PIXELS / area) ** 0.5)


def _pdf_title(reader) -> str:
    try:
        meta = reader.metadata
        title = str(meta.title or "") if meta else ""
    except Exception:  # noqa: BLE001 - broken metadata is not worth failing over
        return ""
    title = re.sub(r"^Microsoft (Word|PowerPoint) - ", "", " ".join(title.split()))
    return "" if title.lower() in ("untitled", "title") else title


"""PDF: one segment per page, from the text layer (pypdf) when it is good, else by OCR of the page rendered by
pypdfium2 (`ingest.loaders.ocr`; such segments carry `ocr=True`); encrypted files open only with an empty password.

A page is OCR'd when its text layer is missing or garbage (`usable_text`) and the page holds an image: a scan.
A page with ruled tables is re-read with them as Markdown tables (`ingest.loaders.pdf_tables`).
"""

from __future__ import annotations

import io
import re

from ingest.loaders.base import Loader, default_title, short_reason
from ingest.loaders.image import MAX_PIXELS
from ingest.loaders.ocr import NO_ENGINE, OCR_DPI, ocr_engine, ocr_pages_done, read_image
from ingest.loaders.pdf_tables import pages_with_tables
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
                except Exception as exc:  # noqa: BLE001 - e.g. AES without a crypto library
                    raise LoadError(f"encrypted PDF (cannot decrypt: {exc})") from exc
                if not opened:
                    raise LoadError("encrypted PDF (password required)")
            pages = reader.pages
            n_pages = len(pages)
        except LoadError:
            raise
        except Exception as exc:  # noqa: BLE001 - pypdf raises many types (PdfReadError, ValueError...) on broken files
            raise LoadError(f"corrupt PDF: {short_reason(exc)}") from exc

        texts: list[str | None] = []  # per page: the tidied text layer, or None when unreadable
        failures = 0
        last_error: Exception | None = None
        for number in range(n_pages):
            try:
                texts.append(_tidy_pdf_text(pages[number].extract_text() or ""))
            except Exception as exc:  # noqa: BLE001 - one unreadable page does not sink the file
                failures += 1
                last_error = exc
                texts.append(None)
        scanned = [i for i, text in enumerate(texts) if not usable_text(text or "")]
        ocr_texts, ocr_missing = _ocr_pages(data, scanned) if scanned else ({}, False)
        table_texts = pages_with_tables(data, [i for i, text in enumerate(texts) if i not in ocr_texts and text])
        joiner = Joiner()
        for index, text in enumerate(texts):
            if ocr_texts.get(index):
                joiner.add(ocr_texts[index], page=index + 1, extra={"ocr": True})
            else:  # the text layer, or the page rebuilt with its ruled tables as Markdown
                joiner.add(table_texts.get(index) or text or "", page=index + 1)
        if not joiner.segments:
            if failures and last_error is not None:
                raise LoadError(f"corrupt PDF: {short_reason(last_error)}")
            if ocr_missing:
                raise LoadError(f"PDF has no text layer (scanned?) and {NO_ENGINE}")
            raise LoadError("PDF has no text layer (scanned?)")
        return [Document(doc_id=rel, title=_pdf_title(reader) or default_title(rel), kind="pdf",
                         segments=joiner.segments, extra={"pages": n_pages})]


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


def _tidy_pdf_text(text: str) -> str:
    text = text.replace("\x00", "")
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    return re.sub(r"\n{3,}", "\n\n", text).strip()

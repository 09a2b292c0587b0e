"""PDF: one segment per page of the text layer (pypdf); encrypted files open only with an empty password."""

from __future__ import annotations

import io
import re

from ingest.loaders.base import Loader, default_title, short_reason
from ingest.loaders.segments import Joiner
from ingest.types import Document, LoadError


class PdfLoader(Loader):
    """Pages without a text layer are skipped; one unreadable page does not sink the file."""

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

        joiner = Joiner()
        failures = 0
        last_error: Exception | None = None
        for number in range(n_pages):
            try:
                page_text = pages[number].extract_text() or ""
            except Exception as exc:  # noqa: BLE001 - one unreadable page does not sink the file
                failures += 1
                last_error = exc
                continue
            joiner.add(_tidy_pdf_text(page_text), page=number + 1)
        if not joiner.segments:
            if failures and last_error is not None:
                raise LoadError(f"corrupt PDF: {short_reason(last_error)}")
            raise LoadError("PDF has no text layer (scanned?)")
        return [Document(doc_id=rel, title=_pdf_title(reader) or default_title(rel), kind="pdf",
                         segments=joiner.segments, extra={"pages": n_pages})]


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

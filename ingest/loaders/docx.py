"""DOCX: paragraphs and tables (as Markdown tables) in body order (python-docx), one segment per heading section."""

from __future__ import annotations

import io
import re

from ingest.loaders.archives import checked_bytes
from ingest.loaders.base import Loader, default_title, short_reason
from ingest.loaders.segments import Joiner, heading_path, push_heading
from ingest.loaders.tables import markdown_table
from ingest.types import Document, LoadError


class DocxLoader(Loader):
    """The title from the core properties, a `Title` paragraph or the first `Heading 1`; tables as Markdown."""

    suffixes = frozenset({".docx"})

    def load(self, data: bytes, rel: str, suffix: str) -> list[Document]:
        checked_bytes(data, "DOCX")  # encrypted, legacy, corrupt or a zip bomb: refused before parsing
        try:
            import docx
            from docx.table import Table
            from docx.text.paragraph import Paragraph

            document = docx.Document(io.BytesIO(data))
        except Exception as exc:  # noqa: BLE001 - python-docx raises KeyError/ValueError/... on broken packages
            raise LoadError(f"corrupt DOCX: {short_reason(exc)}") from exc

        title = (document.core_properties.title or "").strip()
        joiner = Joiner()
        stack: list[tuple[int, str]] = []
        section = ""
        parts: list[str] = []

        def flush() -> None:
            joiner.add("\n".join(parts), section=section)
            parts.clear()

        for element in document.element.body.iterchildren():
            tag = element.tag.rsplit("}", 1)[-1]
            if tag == "p":
                paragraph = Paragraph(element, document)
                text = paragraph.text.strip()
                if not text:
                    continue
                style = (paragraph.style.name if paragraph.style is not None else "") or ""
                level = _docx_heading_level(style)
                if style == "Title":
                    title = title or text
                    continue
                if level:
                    flush()
                    push_heading(stack, level, " ".join(text.split()))
                    section = heading_path(stack)
                    if level == 1 and not title:
                        title = text
                    continue
                parts.append(text)
            elif tag == "tbl":
                # A merged cell repeats in each grid column it covers, which keeps the columns aligned.
                table = markdown_table([[cell.text for cell in row.cells] for row in Table(element, document).rows])
                if table:
                    parts.append(f"\n{table}\n")  # a paragraph of its own
        flush()
        if not joiner.segments:
            raise LoadError("no text in DOCX")
        return [Document(doc_id=rel, title=title or default_title(rel), kind="docx", segments=joiner.segments)]


def _docx_heading_level(style: str) -> int:
    match = re.fullmatch(r"Heading (\d)", style)
    return int(match.group(1)) if match else 0


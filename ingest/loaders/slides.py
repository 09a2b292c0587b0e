"""PowerPoint (.pptx): one segment per slide (title, text frames and tables in shape order, then the speaker
notes), located by its `slide` number."""

from __future__ import annotations

import io

from ingest.loaders.archives import checked_bytes
from ingest.loaders.base import Loader, default_title, short_reason
from ingest.loaders.segments import Joiner
from ingest.loaders.tables import markdown_table
from ingest.types import Document, LoadError


class PptxLoader(Loader):
    """The section is the slide's title ("Slide 3" when it has none); hidden slides are read too."""

    suffixes = frozenset({".pptx"})

    def load(self, data: bytes, rel: str, suffix: str) -> list[Document]:
        checked_bytes(data, "PPTX")  # encrypted, legacy, corrupt or a zip bomb: refused before parsing
        try:
            from pptx import Presentation

            deck = Presentation(io.BytesIO(data))
            slides = list(deck.slides)
        except Exception as exc:  # noqa: BLE001 - python-pptx raises KeyError/ValueError/... on broken packages
            raise LoadError(f"corrupt PPTX: {short_reason(exc)}") from exc

        joiner = Joiner()
        for number, slide in enumerate(slides, 1):
            title_shape = slide.shapes.title
            slide_title = _one_line(title_shape.text_frame.text) if title_shape is not None else ""
            parts = [slide_title] if slide_title else []
            for shape in slide.shapes:
                if title_shape is not None and shape.shape_id == title_shape.shape_id:
                    continue
                parts.extend(_shape_texts(shape))
            if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
                notes = slide.notes_slide.notes_text_frame.text.strip()
                if notes:
                    parts.append(f"Notes: {notes}")
            joiner.add("\n".join(parts), section=slide_title or f"Slide {number}", extra={"slide": number})
        if not joiner.segments:
            raise LoadError("no text in PPTX" if slides else "no slides in PPTX")
        title = _one_line(deck.core_properties.title or "")
        return [Document(doc_id=rel, title=title or default_title(rel), kind="pptx", segments=joiner.segments,
                         extra={"slides": len(slides)})]


def _shape_texts(shape) -> list[str]:
    """The text of a shape: its paragraphs, a table as Markdown, or the shapes inside a group."""
    if shape.shape_type is not None and getattr(shape, "shapes", None) is not None:  # a group
        return [text for child in shape.shapes for text in _shape_texts(child)]
    if getattr(shape, "has_table", False) and shape.has_table:
        rows = [[cell.text for cell in row.cells] for row in shape.table.rows]
        table = markdown_table(rows)
        return [table] if table else []
    if getattr(shape, "has_text_frame", False) and shape.has_text_frame:
        lines = [p.text.strip() for p in shape.text_frame.paragraphs]
        text = "\n".join(line for line in lines if line)
        return [text] if text else []
    return []


def _one_line(text: str) -> str:
    return " ".join(text.split())

"""Plain text and light markup (reStructuredText, AsciiDoc, ...): one segment; a standalone first line is the title."""

from __future__ import annotations

import re

from ingest.loaders.base import TextLoader, default_title
from ingest.loaders.segments import LineIndex, slice_segment
from ingest.types import Document


class PlainTextLoader(TextLoader):
    suffixes = frozenset({".txt", ".text", ".rst", ".tex", ".org", ".adoc", ".asciidoc"})

    def load_text(self, text: str, rel: str, suffix: str) -> Document:
        lines = LineIndex(text)
        seg = slice_segment(text, lines, 0, len(text))
        segments = [seg] if seg else []
        return Document(doc_id=rel, title=_plain_title(text) or default_title(rel), kind="text", segments=segments)


def _plain_title(text: str) -> str:
    """A short first line that stands alone (followed by a blank or an underline) reads as the title."""
    head = text.lstrip("\n").split("\n", 3)
    first = head[0].strip()
    if len(head) < 2 or not first or len(first) > 80 or first[-1] in ".,;:!?":
        return ""
    second = head[1].strip()
    if second and not re.fullmatch(r"([=\-~^*#+])\1{2,}", second):
        return ""
    return first.strip("=#*-~ ").strip() or ""


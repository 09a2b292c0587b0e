"""The data that flows through ingestion: files → Documents (with Segments) → Chunks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class LoadError(Exception):
    """A file that cannot be ingested; the message is the reason shown to the user (the path is added by the caller)."""


@dataclass
class Segment:
    """A structural piece of a document: a markdown section, a PDF page, a notebook cell, a code definition."""

    text: str
    section: str = ""  # "Heading > Subheading", or e.g. "def train" for code
    page: int | None = None  # 1-based, PDFs only
    start_line: int | None = None  # 1-based, inclusive, in the source file
    end_line: int | None = None
    start_char: int | None = None  # offsets into the loaded document text, when known
    end_char: int | None = None
    #: Locator metadata beyond page and lines, as Chroma-safe scalars (str, int, float, bool), e.g. {"slide": 3},
    #: {"sheet": "Q3"}, {"ocr": True}; copied into every chunk cut from this segment.
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Document:
    """One loaded unit: a file, or one record of a BEIR corpus.jsonl."""

    doc_id: str  # the relative path, or the record's `_id` for corpus.jsonl
    title: str
    kind: str  # markdown, text, html, pdf, docx, code, notebook, csv, jsonl
    segments: list[Segment]
    extra: dict[str, Any] = field(default_factory=dict)  # extra metadata, e.g. {"language": "python"}


@dataclass
class Chunk:
    """What is stored: text for display, text for embedding (with title/section context) and metadata."""

    text: str  # the chunk's own text, shown to users and cited
    embed_text: str  # title and section prepended: what the embedder (and BM25) sees
    doc_id: str
    title: str
    section: str = ""
    page: int | None = None
    start_line: int | None = None
    end_line: int | None = None
    start_char: int | None = None
    end_char: int | None = None
    n_tokens: int = 0
    extra: dict[str, Any] = field(default_factory=dict)  # the segment's locator metadata (slide, sheet, ocr...)

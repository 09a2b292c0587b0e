"""Loaders: one file on disk → one or more `Document`s whose `Segment`s carry the file's structure.

`load_file` looks the file's suffix up in `LOADERS` (one `Loader` per format family, one module each) and hands the
bytes to that loader. Every failure a user can cause (empty, binary, undecodable, corrupt, encrypted, unsupported)
raises `LoadError` with a short reason; the caller adds the path and carries on.

Offsets. `start_char`/`end_char` index the document's *loaded text*: for text-like files (markdown, plain text,
code) that is the decoded source with newlines normalised to "\\n", so segments are exact slices of it and their
line numbers are source line numbers; for extracted formats (HTML, PDF, DOCX, PPTX, spreadsheets, EPUB, mail,
images, notebooks, CSV) it is the extracted segment texts joined by blank lines, and source line numbers are given
only where they are meaningful (a spreadsheet's are its row numbers). Other locators (slide, sheet, chapter,
message, ocr) go in `Segment.extra` and reach every chunk's metadata.

Adding a format:
    1. Write `ingest/loaders/<format>.py` with one class: subclass `TextLoader` and implement
       `load_text(text, rel, suffix) -> Document` for a text format (decoding and the whitespace-only check come
       with it), or subclass `Loader` and implement `load(data, rel, suffix) -> list[Document]` for a binary one.
       Set `suffixes` (lower case, with the dot). `segments.py` has the helpers for offsets, line numbers and
       heading paths; `base.default_title` gives the title when the file has none.
    2. Add an instance to `LOADERS` below. A suffix may belong to one loader only (checked at import).
"""

from __future__ import annotations

from pathlib import Path

from ingest.loaders.base import Loader, TextLoader, default_title
from ingest.loaders.code import CODE_LANGUAGES, CodeLoader
from ingest.loaders.decoding import decode_text
from ingest.loaders.docx import DocxLoader
from ingest.loaders.epub import EpubLoader
from ingest.loaders.html import HtmlLoader
from ingest.loaders.image import ImageLoader
from ingest.loaders.jsonl import BeirJsonlLoader
from ingest.loaders.mail import MailLoader
from ingest.loaders.markdown import MarkdownLoader
from ingest.loaders.notebook import NotebookLoader
from ingest.loaders.pdf import PdfLoader
from ingest.loaders.slides import PptxLoader
from ingest.loaders.spreadsheet import SpreadsheetLoader
from ingest.loaders.tabular import TabularLoader
from ingest.loaders.text import PlainTextLoader
from ingest.types import Document, LoadError

#: The registry: one loader per format family.
LOADERS: tuple[Loader, ...] = (
    MarkdownLoader(),
    PlainTextLoader(),
    HtmlLoader(),
    PdfLoader(),
    DocxLoader(),
    CodeLoader(),
    NotebookLoader(),
    TabularLoader(),
    BeirJsonlLoader(),
    PptxLoader(),
    SpreadsheetLoader(),
    EpubLoader(),
    MailLoader(lambda name: loader_for(name)),  # attachments by the registry's loader (bound late: defined below)
    ImageLoader(),
)


def _by_suffix(loaders: tuple[Loader, ...]) -> dict[str, Loader]:
    table: dict[str, Loader] = {}
    for loader in loaders:
        for suffix in loader.suffixes:
            if suffix in table:
                raise ValueError(f"suffix {suffix!r} is claimed by {type(table[suffix]).__name__} "
                                 f"and {type(loader).__name__}")
            table[suffix] = loader
    return table


#: suffix (lower case, with the dot) → the loader for it
LOADER_BY_SUFFIX: dict[str, Loader] = _by_suffix(LOADERS)
SUPPORTED_SUFFIXES: frozenset[str] = frozenset(LOADER_BY_SUFFIX)


def loader_for(path: Path | str) -> Loader | None:
    """The loader for this file's suffix (case-insensitive), or None when the type is not supported."""
    return LOADER_BY_SUFFIX.get(Path(path).suffix.lower())


def is_supported(path: Path | str) -> bool:
    """Whether `load_file` knows this file's type (by suffix, case-insensitive)."""
    return loader_for(path) is not None


def load_file(path: Path, rel: str) -> list[Document]:
    """Load one file into Documents.

    Args:
        path: the file on disk.
        rel: its POSIX path relative to the ingested root; the document id (except for corpus.jsonl records,
            whose `_id` is kept) and the source of the default title.

    Returns:
        One Document, or one per record for a BEIR-style `.jsonl` corpus.

    Raises:
        LoadError: with a short reason (the caller adds the path).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    loader = LOADER_BY_SUFFIX.get(suffix)
    if loader is None:
        raise LoadError(f"unsupported file type '{suffix}'" if suffix else "unsupported file type (no extension)")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise LoadError(f"cannot read file ({exc.strerror or exc})") from exc
    if not data:
        raise LoadError("empty file")
    return loader.load(data, rel, suffix)


__all__ = [
    "CODE_LANGUAGES",
    "LOADERS",
    "LOADER_BY_SUFFIX",
    "SUPPORTED_SUFFIXES",
    "Loader",
    "TextLoader",
    "decode_text",
    "default_title",
    "is_supported",
    "load_file",
    "loader_for",
]

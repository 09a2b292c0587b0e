"""Ingest units: what the pipeline ingests, updates and prunes as a whole.

A unit is a file (found by `discover`) or the LangChain `Document`s that share one `metadata["source"]` (what a
loader gives for one file, URL or record). Both are handed to the pipeline the same way: an identity (`key`, stored
as each chunk's `path`), a name shown to users (`rel`, stored as `source`), a content hash that says whether the
stored chunks are still current, and a `load()` into our `Document`s. So documents get every guarantee files have:
content-derived ids, nothing written when unchanged, new chunks before stale ones go, the writer lock.

LangChain documents are duck-typed (anything with `page_content` and `metadata`): nothing here imports LangChain.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from ingest.discover import FoundFile
from ingest.types import Document, LoadError, Segment

#: `origin` recorded on the chunks of LangChain documents: `prune` of a documents ingest looks only at these, and a
#: file ingest's prune never touches them.
LANGCHAIN_ORIGIN = "langchain"

#: Metadata keys the pipeline writes itself. A LangChain document's own metadata is stored beside them under its
#: own names; a key that collides with one of these (or with `source`, `title`, `section`, `page`, which are read
#: as ours) is stored as `lc_<key>`.
PIPELINE_KEYS = frozenset({"path", "source", "doc_id", "title", "section", "page", "start_line", "end_line",
                           "start_char", "end_char", "kind", "chunk_index", "n_chunks", "n_tokens", "file_hash",
                           "chunking", "content_hash", "ingested_at", "origin"})
#: Our keys read from a LangChain document's metadata (not stored twice).
_READ_KEYS = frozenset({"source", "title", "section", "page"})


@dataclass
class IngestUnit:
    """One thing ingested as a whole (a file, or the documents of one source)."""

    key: str  # identity in the store (the `path` metadata): a file's absolute path, or a document source
    rel: str  # shown to users and cited (the `source` metadata)
    content_hash: Callable[[], str]  # of everything that decides the chunks and their metadata
    load: Callable[[], list[Document]]  # raises LoadError (or OSError for files)
    origin: str = ""  # "" for files, LANGCHAIN_ORIGIN for documents (stored when set)
    file: Path | None = None  # a file unit's file: parsed in a worker process (`ingest.isolation`), not by `load`

    @functools.cached_property
    def hash(self) -> str:
        return self.content_hash()


def file_sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_unit(item: FoundFile) -> IngestUnit:
    """A found file: identified by its resolved path, hashed by its bytes, loaded by its suffix's loader."""
    from ingest.loaders import load_file

    return IngestUnit(key=str(item.path), rel=item.rel, content_hash=lambda: file_sha256(item.path),
                      load=lambda: load_file(item.path, item.rel), file=item.path)


# -- LangChain documents ---------------------------------------------------------------------------------------------
@dataclass
class DocumentBatch:
    """LangChain documents sorted into units, with what could not be used at all."""

    units: list[IngestUnit]
    failed: list[dict[str, str]]  # [{path, error}]: items that are not documents (no source to keep them under)
    skipped: list[dict[str, str]]  # empty documents of a source that has others


def document_units(documents: Iterable[Any]) -> DocumentBatch:
    """Group LangChain `Document`s by `metadata["source"]` into units, in first-seen order.

    A document without a source is its own unit, keyed by its `id` if it has one, else by a hash of its text (so a
    re-ingest of the same text is still unchanged). A document whose `page_content` is not a string fails its whole
    source (whose chunks stay as they were, as for a file that fails to load); an empty one is skipped and reported.
    """
    groups: dict[str, list[tuple[int, Any]]] = {}
    failed: list[dict[str, str]] = []
    for index, doc in enumerate(documents):
        if not hasattr(doc, "page_content"):
            failed.append({"path": f"#{index}", "error": f"item {index} is a {type(doc).__name__}, not a Document: "
                                                         "wrap it as Document(page_content=..., metadata={'source': ...})"})
            continue
        groups.setdefault(_source_of(doc), []).append((index, doc))
    units: list[IngestUnit] = []
    skipped: list[dict[str, str]] = []
    for source, docs in groups.items():
        kept = []
        for index, doc in docs:
            if isinstance(doc.page_content, str) and not doc.page_content.strip():
                skipped.append({"path": source, "error": f"document {index} is empty"})
            else:
                kept.append((index, doc))
        units.append(_source_unit(source, kept))
    return DocumentBatch(units, failed, skipped)


def _source_of(doc: Any) -> str:
    source = (getattr(doc, "metadata", None) or {}).get("source")
    if source not in (None, ""):
        return str(source)
    if getattr(doc, "id", None):
        return f"id:{doc.id}"
    text = doc.page_content if isinstance(doc.page_content, str) else repr(doc.page_content)
    return "sha256:" + hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:16]


def _source_unit(source: str, docs: list[tuple[int, Any]]) -> IngestUnit:
    def content_hash() -> str:
        digest = hashlib.sha256()
        for _, doc in docs:
            text = doc.page_content if isinstance(doc.page_content, str) else f"<{type(doc.page_content).__name__}>"
            record = [text, {str(k): v for k, v in (doc.metadata or {}).items()}]
            digest.update(json.dumps(record, sort_keys=True, default=str).encode("utf-8", "replace"))
            digest.update(b"\x00")
        return digest.hexdigest()

    def load() -> list[Document]:
        loaded = []
        for index, doc in docs:
            if not isinstance(doc.page_content, str):
                raise LoadError(f"document {index}: page_content is a {type(doc.page_content).__name__}, not text")
            loaded.append(_to_document(source, doc))
        return loaded

    return IngestUnit(key=source, rel=source, content_hash=content_hash, load=load, origin=LANGCHAIN_ORIGIN)


def _to_document(source: str, doc: Any) -> Document:
    """One LangChain document as one of ours: one segment, its metadata kept for every chunk cut from it."""
    meta = dict(doc.metadata or {})
    title = str(meta.get("title") or PurePosixPath(source.replace("\\", "/")).name or source)
    page = meta.get("page")
    segment = Segment(doc.page_content, section=str(meta.get("section") or ""),
                      page=page if isinstance(page, int) and not isinstance(page, bool) else None, start_char=0)
    return Document(doc_id=source, title=title, kind="text", segments=[segment],
                    extra={"stored_metadata": stored_metadata(meta)})


def stored_metadata(meta: dict[str, Any]) -> dict[str, Any]:
    """A document's own metadata as the store can hold it: scalars as they are, None left out, anything else as
    JSON; our keys are read, not copied, and a name the pipeline uses is prefixed with `lc_`."""
    out: dict[str, Any] = {}
    for key, value in meta.items():
        key = str(key)
        if key in _READ_KEYS or value is None:
            continue
        if key in PIPELINE_KEYS:
            key = f"lc_{key}"
        out[key] = value if isinstance(value, (str, int, float, bool)) else json.dumps(value, default=str)
    return out

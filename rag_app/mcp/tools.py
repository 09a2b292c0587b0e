"""The tools' work over a `RAG`: collections resolved, results mapped onto the output models of `schemas.py`.

Plain synchronous methods (the server runs each call on a worker thread); every failure meant for the user is a
`RagError` whose message names the fix, which the server returns as the tool's error.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from rag_app.errors import RagError
from rag_app.mcp.paths import confine
from rag_app.mcp.schemas import (
    AskResult,
    Chunk,
    CitedSource,
    CollectionRow,
    Collections,
    Deleted,
    DocumentRow,
    Documents,
    HistoryTurn,
    IngestResult,
    SearchResult,
)
from rag_app.services.answer import Answer, Source
from rag_app.services.uploads import check_collection_name

#: Called with (progress, total or None, message) while a long call runs.
Report = Callable[[float, "float | None", str], None]


class DocumentTools:
    """search, ask, list and (when allowed) write, over one `RAG`.

    Args:
        rag: the `RAG` whose models and store are used (shared with `rag serve` when mounted there).
        settings: the settings to read `store.collection` and the `mcp` section from (default: `rag.settings`).
    """

    def __init__(self, rag, settings=None):
        self.rag = rag
        self.settings = settings or rag.settings
        self.default = self.settings.store.collection
        self._writes = threading.Lock()  # one write at a time from this face; the store has one writer anyway

    # -- collections ---------------------------------------------------------------------------------------------------
    def resolve(self, name: str | None, *, allow_new: bool = False) -> str:
        """The collection a call names (none: the default one).

        Raises:
            RagError: no such collection (unless `allow_new`), naming the ones there are.
        """
        chosen = (name or "").strip().removeprefix("rag:") or self.default
        if allow_new:
            return check_collection_name(chosen)
        names = [info.name for info in self.rag.collections()]
        if chosen in names:
            return chosen
        known = ", ".join(repr(n) for n in names) if names else "none yet"
        hint = ("ingest documents first (`rag ingest PATH`)" if not names or chosen == self.default
                else "list_collections lists them")
        raise RagError(f"unknown collection {chosen!r} (collections: {known}): {hint}")

    def collections(self) -> Collections:
        return Collections(collections=[
            CollectionRow(name=info.name, chunks=info.count, embedder=info.embedder, default=info.name == self.default)
            for info in self.rag.collections()])

    def documents(self, collection: str | None) -> Documents:
        name = self.resolve(collection)
        rows = [DocumentRow(source=d.source, path=d.path, title=d.title, chunks=d.chunks, ingested_at=d.ingested_at,
                            kind=d.kind) for d in self.rag.documents(name)]
        return Documents(collection=name, documents=rows)

    # -- reading -------------------------------------------------------------------------------------------------------
    def search(self, query: str, k: int | None, collection: str | None) -> SearchResult:
        if not query.strip():
            raise RagError("query: the query is empty; give the words or question to search for")
        name = self.resolve(collection)
        hits = self.rag.retrieve(query, k=k, collection=name)
        chunks = []
        for rank, hit in enumerate(hits, start=1):
            source = Source.from_hit(rank, hit)
            chunks.append(Chunk(rank=rank, source=source.source, title=source.title, section=source.section,
                                page=source.page, lines=source.lines, locator=source.locator,
                                location=source.location(), score=source.score, text=source.text, id=hit.id))
        return SearchResult(collection=name, query=query, chunks=chunks)

    def ask(self, question: str, collection: str | None, history: Sequence[HistoryTurn] | None,
            report: Report | None = None) -> AskResult:
        """The grounded answer; `report` hears of the search, then of each piece of the answer as it is written."""
        if not question.strip():
            raise RagError("question: the question is empty")
        name = self.resolve(collection)
        turns = self.rag.standalone_turns({"role": t.role, "content": t.content} for t in history or [])
        if report:
            report(0, None, "searching the documents")
        answer: Answer | None = None
        pieces = 0
        for item in self.rag.stream(question, turns, collection=name):
            if isinstance(item, Answer):
                answer = item
            elif report:
                pieces += 1
                report(pieces, None, "writing the answer")
        assert answer is not None  # the stream always ends with the final Answer
        if report:
            report(pieces, pieces, "answered")
        return AskResult(answer=answer.text, refused=answer.refused, collection=name,
                         sources=[cited_source(s) for s in answer.sources],
                         standalone_question=answer.standalone_question, fallback=answer.fallback)

    # -- writing (registered only when mcp.allow_writes) ---------------------------------------------------------------
    def ingest(self, paths: Sequence[str], collection: str | None, report: Report | None = None) -> IngestResult:
        self._check_writes("ingest_files")
        if not paths:
            raise RagError("paths: give at least one file or folder")
        name = self.resolve(collection, allow_new=True)
        resolved = confine(paths, self.settings.mcp.write_roots)

        def progress(p) -> None:
            if report:
                where = f": {p.current}" if p.current else ""
                report(p.files_done, p.files_total, f"{p.files_done}/{p.files_total} files, "
                                                    f"{p.chunks_written} chunks written{where}")

        with self._writes:
            summary = self.rag.ingest(resolved, collection=name, progress=progress)
        return IngestResult.model_validate(summary.to_dict())

    def delete(self, source: str, collection: str | None) -> Deleted:
        self._check_writes("delete_document")
        name = self.resolve(collection)
        match = next((d for d in self.rag.documents(name) if source in (d.source, d.path)), None)
        if match is None:
            raise RagError(f"no document {source!r} in collection {name!r}: list_documents lists them")
        with self._writes:
            chunks = self.rag.delete_document(match.path, collection=name)
        return Deleted(collection=name, source=match.source, chunks=chunks)

    def _check_writes(self, tool: str) -> None:
        if not self.settings.mcp.allow_writes:
            raise RagError(f"{tool} is off: start the server with RAG_MCP__ALLOW_WRITES=true (and the folders it "
                           "may read in RAG_MCP__WRITE_ROOTS)")


def cited_source(source: Source) -> CitedSource:
    quotes = [source.text[start:end].strip() for start, end in source.cited_spans]
    return CitedSource(n=source.n, cited=source.cited, source=source.source, title=source.title,
                       section=source.section, page=source.page, lines=source.lines, locator=source.locator,
                       location=source.location(), score=source.score, text=source.text, quotes=quotes)

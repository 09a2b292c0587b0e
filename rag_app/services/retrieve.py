"""The retrieval service: top-k chunks with scores for a query, with metadata filters.

Dense retrieval over the vector store for now; the lexical and hybrid retrievers plug in behind the same
`Retriever.retrieve` signature.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable

from rag_app.components.embedder import Embedder
from rag_app.components.store import Hit, VectorStore
from rag_app.settings import Settings


class Retriever:
    def __init__(self, settings: Settings, embedder: Embedder, store: VectorStore):
        self.settings = settings
        self.embedder = embedder
        self.store = store

    def retrieve(self, query: str, k: int | None = None, source_glob: str | None = None) -> list[Hit]:
        """Return up to k hits, best first. `source_glob` filters on the source path (e.g. "papers/*.pdf")."""
        k = k or self.settings.retrieve.k
        fetch = max(k, self.settings.retrieve.fetch_k) if source_glob else k
        hits = self.store.query(self.embedder.embed_query(query), fetch)
        if source_glob:
            hits = [h for h in hits if fnmatch.fnmatch(h.metadata.get("source", ""), source_glob)]
        return hits[:k]


def after_write_hooks(settings: Settings) -> list[Callable[[VectorStore], None]]:
    """Indexes derived from the vector store, refreshed at the end of each ingest run."""
    return []

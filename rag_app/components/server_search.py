"""Hybrid search run by the Chroma server itself: dense Knn + sparse BM25 Knn, fused by Rrf, in one `search` call.

Only distributed Chroma and Chroma Cloud run it. In chromadb 1.5.9 the embedded client raises
`NotImplementedError("Search is not implemented for Local Chroma")` (chromadb/api/rust.py, `_search`), and a
self-hosted `chroma run` answers `Collection.search` with "Search operation is not implemented for local executor"
and refuses to create a sparse vector index ("Sparse vector indexing is not enabled in local"). Elsewhere the app
fuses its own BM25 index with Chroma's dense results (`rag_app.services.retrieve`), so this path is picked by
capability: `probe` checks the collection once and says whether (and how) the server can do it.

What the collection needs, given when it is created (docs/deploy.md, "Chroma distributed or Chroma Cloud"):

    schema = Schema()
    schema.create_index(config=VectorIndexConfig(space="cosine"))
    schema.create_index(config=SparseVectorIndexConfig(source_key=K.DOCUMENT, bm25=True,
                                                       embedding_function=ChromaBm25EmbeddingFunction()), key="bm25")

Sparse vectors are computed on the client, by the schema's embedding function: `Collection.upsert` encodes each
document's term frequencies into the record's metadata under the index key, and a query is encoded the same way
(`ChromaBm25EmbeddingFunction` needs the `snowballstemmer` package); `bm25=True` makes the server weight the query's
terms by their IDF over the collection, which is what makes the sparse Knn a BM25 ranking.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from rag_app.errors import StoreUnavailableError

log = logging.getLogger(__name__)


class ServerHybridSearch:
    """Hybrid search on a collection whose sparse BM25 index lives under metadata key `key`.

    Args:
        key: the metadata key of the collection's sparse vector index.
        sparse_embedder: the index's embedding function (encodes the query's terms).
        errors: wraps each server call (turns a dead server into a `StoreUnavailableError` naming its URL).
    """

    def __init__(self, key: str, sparse_embedder, errors: Callable[[], AbstractContextManager]):
        self.key = key
        self.sparse_embedder = sparse_embedder
        self._errors = errors

    def search(self, collection, query: str, vector, k: int, where: dict[str, Any] | None = None, *,
               rrf_k: int = 60, dense_weight: float = 0.5) -> list[tuple[str, float]]:
        """(id, fused score) of the k best chunks, best first; the score is the Rrf sum (higher is better).

        Each Knn ranks its `k` nearest; a chunk missing from one list counts as ranked just past it (`default=k`),
        so a chunk found by only one side still competes, as in the local fusion.
        """
        from chromadb import K, Knn, Rrf, Search

        if k <= 0:
            return []
        dense = Knn(query=[float(x) for x in vector], limit=k, default=k, return_rank=True)
        ranks, weights = [dense], [dense_weight]
        sparse_query = self.sparse_embedder.embed_query([query])[0]
        if len(sparse_query.indices):  # a query of stopwords only has no terms: rank by the dense side alone
            ranks.append(Knn(query=sparse_query, key=self.key, limit=k, default=k, return_rank=True))
            weights.append(1.0 - dense_weight)
        search = Search(where=where, rank=Rrf(ranks=ranks, k=rrf_k, weights=weights), limit=k).select(K.SCORE)
        with self._errors():
            result = collection.search(search)
        ids, scores = result["ids"][0], (result.get("scores") or [None])[0] or []
        # Chroma orders ascending and negates the Rrf sum; negate back so that higher is better, as elsewhere.
        return [(rid, -float(score)) for rid, score in zip(ids, scores)]


def bm25_index(collection) -> tuple[str, Any] | None:
    """(metadata key, embedding function) of the collection's sparse BM25 index, or None when it has none."""
    schema = collection.schema
    for key, value_types in (schema.keys.items() if schema is not None else ()):
        sparse = value_types.sparse_vector
        index = sparse.sparse_vector_index if sparse is not None else None
        if index is not None and index.enabled and index.config.bm25 and index.config.embedding_function is not None:
            return key, index.config.embedding_function
    return None


def probe(collection, errors: Callable[[], AbstractContextManager]) -> ServerHybridSearch | None:
    """Whether the server runs hybrid search on this collection: a `ServerHybridSearch`, or None (with the reason
    logged). A refusal is an answer (None), not an error; only an unreachable server raises.

    Raises:
        StoreUnavailableError: the server did not answer (try again; nothing is decided).
    """
    found = bm25_index(collection)
    if found is None:
        log.info("collection %r has no sparse BM25 index (SparseVectorIndexConfig with bm25=True): hybrid retrieval "
                 "fuses the local BM25 index", collection.name)
        return None
    key, sparse_embedder = found
    try:
        sparse_embedder.embed_query(["probe"])
    except Exception as exc:  # noqa: BLE001 - e.g. ChromaBm25EmbeddingFunction without snowballstemmer
        log.warning("cannot encode queries for the sparse index %r (%s): install what it names (e.g. "
                    "`pip install snowballstemmer`); hybrid retrieval fuses the local BM25 index", key, exc)
        return None
    from chromadb import Search

    try:
        with errors():
            collection.search(Search(limit=1))
    except StoreUnavailableError:
        raise
    except Exception as exc:  # noqa: BLE001 - the server's refusal, whatever its type
        log.info("the Chroma server refuses Collection.search (%s): hybrid retrieval fuses the local BM25 index", exc)
        return None
    return ServerHybridSearch(key, sparse_embedder, errors)

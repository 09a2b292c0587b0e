"""Server-side hybrid search against a scripted Chroma collection (no Chroma deployment here runs the Search API):
the probe says yes only for a sparse BM25 index on a server that accepts `search`, a refusal is an answer and an
unreachable server an error; the search is one Rrf of the dense and sparse Knn, filtered, limited, best first."""

from __future__ import annotations

import contextlib
import zlib

import pytest
from chromadb import K, Schema, SparseVectorIndexConfig
from chromadb.api.types import SearchResult
from chromadb.base_types import SparseVector
from chromadb.errors import ChromaError
from chromadb.utils.embedding_functions import ChromaBm25EmbeddingFunction

from rag_app.components.server_search import probe
from rag_app.errors import StoreUnavailableError

LOCAL_REFUSAL = "Error executing plan: Not implemented: Search operation is not implemented for local executor"


class TermEncoder(ChromaBm25EmbeddingFunction):
    """Chroma's BM25 encoder with plain lower-cased words for terms (no stemmer package needed)."""

    def _encode(self, text):
        terms = sorted({zlib.crc32(w.encode()) for w in text.lower().split() if w not in ("the", "a", "of")})
        return SparseVector(indices=terms, values=[1.0] * len(terms))


class BrokenEncoder(ChromaBm25EmbeddingFunction):
    def _encode(self, text):
        raise ValueError("The snowballstemmer python package is not installed")


def bm25_schema(encoder=None, bm25: bool = True) -> Schema:
    config = SparseVectorIndexConfig(source_key=K.DOCUMENT, embedding_function=encoder or TermEncoder(), bm25=bm25)
    return Schema().create_index(config=config, key="bm25")


class ScriptedCollection:
    """A collection's `schema` and `search`, as a distributed Chroma server would answer."""

    name = "docs"

    def __init__(self, schema: Schema | None, answer=None):
        self.schema = schema
        self.answer = answer  # a SearchResult, or an exception to raise
        self.searches = []

    def search(self, search):
        self.searches.append(search)
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


@contextlib.contextmanager
def server_errors():
    """Like the store's wrapper: a dead connection becomes a StoreUnavailableError."""
    try:
        yield
    except ConnectionError as exc:
        raise StoreUnavailableError(f"the Chroma server is unreachable ({exc})") from exc


def knns(rank) -> list[dict]:
    """Every Knn in a serialised rank expression, in order."""
    if isinstance(rank, dict):
        return [rank["$knn"]] if "$knn" in rank else [k for value in rank.values() for k in knns(value)]
    return [k for value in rank for k in knns(value)] if isinstance(rank, list) else []


def answer(ids, scores) -> SearchResult:
    return SearchResult({"ids": [ids], "scores": [scores], "documents": None, "embeddings": None, "metadatas": None,
                         "select": [["#score"]]})


def test_a_collection_without_a_sparse_bm25_index_is_not_probed_on_the_server():
    for schema in (None, Schema(), bm25_schema(bm25=False)):
        collection = ScriptedCollection(schema, answer=answer([], []))
        assert probe(collection, server_errors) is None
        assert collection.searches == []


def test_a_server_that_refuses_search_means_no_without_raising():
    collection = ScriptedCollection(bm25_schema(), answer=ChromaError(LOCAL_REFUSAL))
    assert probe(collection, server_errors) is None
    assert len(collection.searches) == 1


def test_a_query_encoder_that_cannot_run_means_no():
    collection = ScriptedCollection(bm25_schema(BrokenEncoder()), answer=answer([], []))
    assert probe(collection, server_errors) is None


def test_an_unreachable_server_is_an_error_not_an_answer():
    collection = ScriptedCollection(bm25_schema(), answer=ConnectionError("connection refused"))
    with pytest.raises(StoreUnavailableError, match="unreachable"):
        probe(collection, server_errors)


def test_the_search_is_one_rrf_of_dense_and_sparse_knn_best_first():
    collection = ScriptedCollection(bm25_schema(), answer=answer([], []))
    hybrid = probe(collection, server_errors)
    assert hybrid is not None and hybrid.key == "bm25"

    collection.answer = answer(["c", "a"], [-0.0325, -0.0321])  # Chroma: negated Rrf sums, ascending
    where = {"source": {"$in": ["a.md", "c.md"]}}
    ranked = hybrid.search(collection, "lantern harbour", [0.6, 0.8], 8, where, rrf_k=30, dense_weight=0.7)
    assert ranked == [("c", 0.0325), ("a", 0.0321)]

    sent = collection.searches[-1].to_dict()
    assert sent["filter"] == where and sent["limit"] == {"offset": 0, "limit": 8}
    assert sent["select"] == {"keys": ["#score"]}
    rrf_terms = sent["rank"]["$mul"][1]["$sum"]  # -(w1 / (k + rank1) + w2 / (k + rank2))
    assert [t["$div"]["left"]["$val"] for t in rrf_terms] == pytest.approx([0.7, 0.3])
    knns = [t["$div"]["right"]["$sum"] for t in rrf_terms]
    assert all(knn[0] == {"$val": 30} for knn in knns)
    dense, sparse = (knn[1]["$knn"] for knn in knns)
    assert dense["key"] == "#embedding" and dense["query"] == pytest.approx([0.6, 0.8])
    assert sparse["key"] == "bm25" and sparse["query"]["indices"] == TermEncoder()(["lantern harbour"])[0].indices
    for knn in (dense, sparse):  # ranks, each list 8 deep, a chunk missing from one counted just past it
        assert (knn["limit"], knn["default"], knn["return_rank"]) == (8, 8, True)


def test_a_query_of_stopwords_only_ranks_by_the_dense_side():
    collection = ScriptedCollection(bm25_schema(), answer=answer([], []))
    hybrid = probe(collection, server_errors)
    collection.answer = answer(["a"], [-0.0164])
    assert hybrid.search(collection, "the of a", [1.0, 0.0], 4) == [("a", 0.0164)]
    assert [knn["key"] for knn in knns(collection.searches[-1].to_dict()["rank"])] == ["#embedding"]

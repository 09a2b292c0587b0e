"""The retriever picks server-side hybrid search by the store's capability: with `server_hybrid` it takes the
server's fused ranking (and never touches a local BM25 index), hydrates it, honours k and source filters; without
it the local dense + BM25 fusion runs. Real stores that cannot (embedded Chroma, `chroma run`) say so quietly."""

from __future__ import annotations

import numpy as np
import pytest

from rag_app.errors import RagError
from rag_app.services.retrieve import Retriever
from rag_app.settings import Settings

from tests.fixtures.files import write

RECORDS = {  # id -> (text, metadata)
    "a": ("Alpha chunk about lanterns.", {"source": "notes/a.md"}),
    "b": ("Bravo chunk about harbours.", {"source": "papers/b.pdf"}),
    "c": ("Charlie chunk about marmots.", {"source": "papers/c.pdf"}),
    "d": ("Delta chunk about orchards.", {"source": "notes/d.md"}),
    "e": ("Echo chunk about brambles.", {"source": "papers/e.pdf"}),
}
#: What the scripted server answers: its Rrf ranking, best first (ids in no alphabetical order on purpose).
SERVER_RANKING = [("c", 0.0325), ("a", 0.0321), ("e", 0.0300), ("b", 0.0290), ("d", 0.0150)]


def matches(where: dict | None, metadata: dict) -> bool:
    """Chroma's `where` semantics for the filters the retriever sends: {"source": x} and {"source": {"$in": [...]}}."""
    if where is None:
        return True
    (key, condition), = where.items()
    if isinstance(condition, dict):
        return metadata.get(key) in condition["$in"]
    return metadata.get(key) == condition


class ScriptedStore:
    """What `Retriever` reads from a store, over `RECORDS`; `hybrid_search` answers `SERVER_RANKING`, filtered."""

    name = "scripted"

    def __init__(self, server_hybrid: bool):
        self.server_hybrid = server_hybrid
        self.hybrid_calls: list[dict] = []

    def hybrid_search(self, query, vector, k, where=None, **fusion):
        if not self.server_hybrid:
            raise AssertionError("hybrid_search called on a store that cannot run it")
        self.hybrid_calls.append({"query": query, "k": k, "where": where, **fusion})
        return [(rid, score) for rid, score in SERVER_RANKING if matches(where, RECORDS[rid][1])][:k]

    def get(self, ids, include_documents=True):
        found = [rid for rid in ids if rid in RECORDS]
        return {"ids": found, "documents": [RECORDS[r][0] for r in found] if include_documents else None,
                "metadatas": [dict(RECORDS[r][1]) for r in found]}

    # The local path's dense half: the reverse of the server's order, so the two paths are told apart.
    def query_ids(self, vector, k, where=None):
        if self.server_hybrid:
            raise AssertionError("local dense search on a store whose server runs hybrid search")
        ranked = [(rid, 0.9 - 0.1 * i) for i, (rid, _) in enumerate(reversed(SERVER_RANKING))]
        return [(rid, s) for rid, s in ranked if matches(where, RECORDS[rid][1])][:k]

    def query(self, vector, k, where=None):
        raise AssertionError("the retriever post-filtered a dense list instead of filtering in the store")

    def count(self):
        return len(RECORDS)

    def generation(self):
        return "stamp-1"

    def get_embeddings(self, ids):
        return {}


class UntouchableLexical:
    """A lexical index that fails the test when used."""

    def __getattr__(self, name):
        raise AssertionError(f"the local BM25 index was used ({name}) although the server runs hybrid search")


class ScriptedLexical:
    """The local BM25 index of the local path: finds "b" then "d"."""

    def current(self):
        return self

    def search(self, query, k, source_glob=None):
        return [("b", 3.0), ("d", 1.0)][:k]

    def query_weight(self, query):
        return 4.0

    def matching_sources(self, source_glob):
        import fnmatch

        return sorted(s for s in {m["source"] for _, m in RECORDS.values()} if fnmatch.fnmatch(s, source_glob))


class QueryEmbedder:
    name = "scripted-embedder"

    def embed_query(self, text):
        return np.array([1.0, 0.0], dtype=np.float32)


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(profile="test", home=tmp_path / "home")


def server_retriever(settings: Settings) -> tuple[Retriever, ScriptedStore]:
    store = ScriptedStore(server_hybrid=True)
    return Retriever(settings, QueryEmbedder(), store, lexical=UntouchableLexical()), store


def test_the_server_ranking_is_returned_hydrated_without_a_local_index(settings):
    retriever, store = server_retriever(settings)
    hits = retriever.retrieve("lanterns and marmots", k=3)
    assert [h.id for h in hits] == ["c", "a", "e"]
    assert [h.text for h in hits] == [RECORDS[r][0] for r in ("c", "a", "e")]
    assert [h.metadata["source"] for h in hits] == ["papers/c.pdf", "notes/a.md", "papers/e.pdf"]
    assert [h.score for h in hits] == [0.0325, 0.0321, 0.0300]
    assert all(h.extra["fusion"] == "server-rrf" for h in hits)
    cfg = settings.retrieve
    assert store.hybrid_calls == [{"query": "lanterns and marmots", "k": cfg.fetch_k, "where": None,
                                   "rrf_k": cfg.rrf_k, "dense_weight": cfg.dense_weight}]


@pytest.mark.parametrize("k", [1, 2, 5])
def test_k_is_honoured(settings, k):
    retriever, _ = server_retriever(settings)
    assert [h.id for h in retriever.retrieve("anything", k=k)] == [rid for rid, _ in SERVER_RANKING][:k]


def test_a_named_source_is_filtered_by_the_server(settings):
    retriever, store = server_retriever(settings)
    hits = retriever.retrieve("anything", k=4, source_glob="notes/d.md")
    assert [h.id for h in hits] == ["d"]
    assert store.hybrid_calls[-1]["where"] == {"source": "notes/d.md"}


def test_a_source_pattern_keeps_only_matching_chunks_in_server_order(settings):
    retriever, _ = server_retriever(settings)
    hits = retriever.retrieve("anything", k=4, source_glob="papers/*.pdf")
    assert [h.id for h in hits] == ["c", "e", "b"]
    assert all(h.extra["fusion"] == "server-rrf" for h in hits)
    assert retriever.retrieve("anything", k=4, source_glob="nowhere/*") == []


@pytest.mark.parametrize("mode", ["dense", "lexical"])
def test_only_hybrid_mode_goes_to_the_server(settings, mode):
    store = ScriptedStore(server_hybrid=True)
    store.query_ids = lambda vector, k, where=None: [("d", 0.8), ("b", 0.7)][:k]  # dense mode reads it
    hits = Retriever(settings, QueryEmbedder(), store, lexical=ScriptedLexical()).retrieve("q", k=2, mode=mode)
    assert [h.id for h in hits] == (["d", "b"] if mode == "dense" else ["b", "d"])
    assert store.hybrid_calls == []
    assert all("fusion" not in h.extra for h in hits)


def test_without_the_capability_the_local_fusion_runs(settings):
    store = ScriptedStore(server_hybrid=False)
    hits = Retriever(settings, QueryEmbedder(), store, lexical=ScriptedLexical()).retrieve("q", k=3)
    # Dense ranks d, b, e, a, c; BM25 finds only b (far ahead) and d: the fusion leads with b, d.
    assert [h.id for h in hits][:2] == ["b", "d"]
    assert all(h.extra["fusion"] == settings.retrieve.fusion for h in hits)
    assert (hits[0].extra["dense_rank"], hits[0].extra["lexical_rank"]) == (2, 1)
    assert store.hybrid_calls == []


def test_an_embedded_store_cannot_and_says_so_without_raising(tmp_path):
    from rag_app.api import RAG

    rag = RAG(Settings(profile="test", home=tmp_path / "home"))
    rag.ingest([write(tmp_path / "docs" / "lanterns.md", "# Lanterns\n\nA lantern lights the harbour.\n")])
    store = rag.store()
    assert store.server_hybrid is False
    with pytest.raises(RagError, match="server_hybrid"):
        store.hybrid_search("lantern", np.zeros(rag.embedder.dim, dtype=np.float32), 3)
    hits = rag.retrieve("lantern harbour", k=1)
    assert hits and hits[0].extra["fusion"] == rag.settings.retrieve.fusion


def test_a_chroma_run_server_cannot_and_says_so_without_raising(tmp_path):
    # Self-hosted Chroma refuses the Search API and sparse indexes (chroma-core/chroma#6185): local fusion it is.
    from rag_app.api import RAG

    from tests.reliability.reliability_support import ChromaServer

    server = ChromaServer(tmp_path / "chroma").start()
    try:
        rag = RAG(Settings(profile="test", home=tmp_path / "home", store={"url": server.url, "collection": "docs"}))
        rag.ingest([write(tmp_path / "docs" / "lanterns.md", "# Lanterns\n\nA lantern lights the harbour.\n")])
        assert rag.store().server_hybrid is False
        hits = rag.retrieve("lantern harbour", k=1)
        assert hits and hits[0].extra["fusion"] == rag.settings.retrieve.fusion
    finally:
        server.stop()


@pytest.mark.parametrize(("mode", "server_hybrid", "kept"), [("hybrid", True, False), ("hybrid", False, True),
                                                             ("lexical", True, True), ("dense", False, False)])
def test_writes_keep_a_local_bm25_index_only_where_retrieval_reads_it(settings, mode, server_hybrid, kept):
    from rag_app.components.lexical_upkeep import kept_lexical_index

    store = ScriptedStore(server_hybrid=server_hybrid)
    hooks = []
    store.after_write = lambda hook, every_run=False: hooks.append(hook)
    kept_lexical_index(settings.with_overrides(**{"retrieve.mode": mode}), store)
    assert bool(hooks) is kept

"""The retrieval service: the top-k chunks for a query, dense, lexical (BM25) or both fused.

    retriever = Retriever(settings, embedder, store)
    hits = retriever.retrieve("what is a VAE?", k=4, source_glob="papers/*.pdf")

Pipeline: candidates from each retriever (`fetch_k` each) → fusion (reciprocal-rank or weighted scores) →
optional cross-encoder reranking → optional MMR diversification → top k.

Scores: `Hit.score` is the cosine similarity in dense mode, the BM25 score in lexical mode and the fused score in
hybrid mode. Every hit also carries `extra["dense_score"]` (cosine, when the chunk was among the dense candidates),
`extra["lexical_score"]`, and the 1-based `extra["dense_rank"]` / `extra["lexical_rank"]` where it had one;
`extra["lexical_share"]` is the BM25 score over the most the query could score (its tokens' IDF summed), in [0, 1).

The lexical index is derived from the store (`rag_app.components.lexical`): it is checked against the store's
generation stamp before queries and reloaded (or rebuilt) when they differ, so deletes and updates show up in both.
The one `RAG` hands in is kept in step with the store's writes (`rag_app.components.lexical_upkeep`): every write
through `store.write()` appends its changes to it as a delta segment.

Where the store's server runs hybrid search itself (`store.server_hybrid`: distributed Chroma or Chroma Cloud with a
sparse BM25 index, `rag_app.components.server_search`), hybrid mode takes its candidates from `store.hybrid_search`
(Knn dense + Knn sparse BM25, fused by the server's Rrf) and no lexical index is built or read; the hits then carry
`extra["fusion"] == "server-rrf"` (else the local method, e.g. "zscore") and no per-retriever ranks or scores.
"""

from __future__ import annotations

import fnmatch
import functools

import numpy as np

from rag_app.components.store import Hit
from rag_app.errors import RagError
from rag_app.services.protocols import Embeds, ReadsChunks, ServesLexical
from rag_app.services.record_cache import RecordCache
from rag_app.settings import Settings

#: Most `$in` values handed to Chroma for a source filter; more matching sources fall back to post-filtering.
_MAX_SOURCES_IN_FILTER = 2000
#: Extra candidates read back beyond k, in case some were deleted since the lexical index last checked the store.
_SPARE = 4
#: `Hit.extra["fusion"]` of hybrid hits fused by the store's server (else the local method, `retrieve.fusion`).
SERVER_FUSION = "server-rrf"


class Retriever:
    """Retrieves chunks from one collection.

    Args:
        settings: `settings.retrieve` chooses the mode, depths, fusion, MMR and reranking.
        embedder: embeds queries (dense and hybrid modes).
        store: the vector store of the collection.
        lexical: the collection's lexical index (`RAG.retriever` passes the one kept in step with the store's
            writes; default: one of its own, which notices writes by the store's generation stamp).
        reranker: a `rag_app.components.reranker.CrossEncoderReranker` (any object with `rerank(query, hits)`); by default from `settings.retrieve.rerank_model`.
    """

    def __init__(self, settings: Settings, embedder: Embeds, store: ReadsChunks,
                 lexical: ServesLexical | None = None, reranker=None):
        self.settings = settings
        self.embedder = embedder
        self.store = store
        self._lexical = lexical
        self._reranker = reranker
        self.records = RecordCache(settings.retrieve.record_cache_size)

    @property
    def lexical(self) -> ServesLexical:
        if self._lexical is None:
            from rag_app.components.lexical_upkeep import lexical_index

            self._lexical = lexical_index(self.settings, self.store)
        return self._lexical

    @property
    def reranker(self):
        if self._reranker is None and self.settings.retrieve.rerank_model:
            from rag_app.components.reranker import get_reranker

            self._reranker = get_reranker(self.settings)
        return self._reranker

    # -----------------------------------------------------------------------------------------------------------
    def retrieve(self, query: str, k: int | None = None, source_glob: str | None = None,
                 mode: str | None = None) -> list[Hit]:
        """Return up to k hits, best first.

        Args:
            query: the question or keywords.
            k: how many chunks (default `settings.retrieve.k`).
            source_glob: keep only chunks whose source path matches, e.g. "papers/*.pdf".
            mode: "dense", "lexical" or "hybrid" for this call (default `settings.retrieve.mode`).
        """
        cfg = self.settings.retrieve
        k = k or cfg.k
        mode = mode or cfg.mode
        if mode not in ("dense", "lexical", "hybrid"):
            raise RagError(f"unknown retrieval mode {mode!r}: use dense, lexical or hybrid")
        if not query.strip():
            return []
        depth = max(k, cfg.fetch_k)
        if self.reranker is not None:
            depth = max(depth, cfg.rerank_k)

        # A store whose server fuses dense and sparse BM25 itself (distributed Chroma, Chroma Cloud) does hybrid
        # retrieval in one call, and no local BM25 index is built or read.
        on_server = mode == "hybrid" and getattr(self.store, "server_hybrid", False)
        lexical = self.lexical.current() if mode in ("lexical", "hybrid") and not on_server else None
        known: dict[str, Hit] = {}  # hits already read with their text (the post-filter path)
        local_dense = mode != "lexical" and not on_server
        dense_ranked = self._dense(query, depth, source_glob, lexical, known) if local_dense else []
        lexical_ranked = lexical.search(query, depth, source_glob) if lexical is not None else []

        if on_server:
            ranked = self._server_hybrid(query, depth, source_glob, known)
        elif mode == "dense":
            ranked = dense_ranked
        elif mode == "lexical":
            ranked = lexical_ranked
        else:
            ranked = fuse_scores(dense_ranked, lexical_ranked, method=cfg.fusion, dense_weight=cfg.dense_weight,
                                 rrf_k=cfg.rrf_k, depth=depth)

        # Read texts only for what can be returned; the next few stand in for records deleted since the index last
        # looked (read only when one of those is missing: each record read costs Chroma ~0.08 ms).
        need = depth if cfg.mmr else max(k, cfg.rerank_k if self.reranker is not None else 0)
        stamp = (getattr(lexical, "stamp", None) or {}).get("generation") if lexical is not None else None
        hits = self._hydrate(ranked[:need if cfg.mmr else need + _SPARE], known, stamp, need, lexical)
        if mode == "hybrid":
            for hit in hits:
                hit.extra["fusion"] = SERVER_FUSION if on_server else cfg.fusion
        for name, ranking in (("dense", dense_ranked), ("lexical", lexical_ranked)):
            ids = [rid for rid, _ in ranking]
            for hit in hits:
                if hit.id in ids:
                    rank = ids.index(hit.id)
                    hit.extra[f"{name}_rank"], hit.extra[f"{name}_score"] = rank + 1, ranking[rank][1]
        if lexical is not None and hits and (attainable := lexical.query_weight(query)) > 0:
            for hit in hits:
                if "lexical_score" in hit.extra:
                    hit.extra["lexical_share"] = hit.extra["lexical_score"] / attainable

        if self.reranker is not None and hits:
            hits = self.reranker.rerank(query, hits[: cfg.rerank_k]) + hits[cfg.rerank_k :]
        if cfg.mmr and len(hits) > k:
            hits = self._mmr(query, hits, k)
        return hits[:k]

    # -- candidates ---------------------------------------------------------------------------------------------
    def _dense(self, query: str, depth: int, source_glob: str | None, lexical,
               known: dict[str, Hit]) -> list[tuple[str, float]]:
        """The nearest chunks as (id, cosine), best first."""
        vector = self.embedder.embed_query(query)
        if not source_glob:
            return self.store.query_ids(vector, depth)
        # Prefilter in Chroma when the lexical index can list the matching sources; else post-filter a deeper list.
        if lexical is not None:
            sources = lexical.matching_sources(source_glob)
            if not sources:
                return []
            if len(sources) <= _MAX_SOURCES_IN_FILTER:
                return self.store.query_ids(vector, depth, where=source_filter(sources))
        hits = [h for h in self.store.query(vector, depth * 4)
                if fnmatch.fnmatch(str(h.metadata.get("source", "")), source_glob)][:depth]
        known.update((h.id, h) for h in hits)
        return [(h.id, h.score) for h in hits]

    def _server_hybrid(self, query: str, depth: int, source_glob: str | None,
                       known: dict[str, Hit]) -> list[tuple[str, float]]:
        """The store server's fused ranking (id, Rrf score), best first (`ServerHybrid`)."""
        cfg = self.settings.retrieve
        vector = self.embedder.embed_query(query)

        def search(k: int, where: dict | None = None) -> list[tuple[str, float]]:
            return self.store.hybrid_search(query, vector, k, where, rrf_k=cfg.rrf_k, dense_weight=cfg.dense_weight)

        if not source_glob:
            return search(depth)
        if not any(c in source_glob for c in "*?["):  # one source, named: Chroma filters it exactly
            return search(depth, source_filter([source_glob]))
        # No local index lists the sources a pattern matches, and Chroma's `where` has no globs: post-filter a deeper
        # list (as dense retrieval does without a lexical index).
        hits = [h for h in self._hydrate(search(depth * 4), {})
                if fnmatch.fnmatch(str(h.metadata.get("source", "")), source_glob)][:depth]
        known.update((h.id, h) for h in hits)
        return [(h.id, h.score) for h in hits]

    def _hydrate(self, ranked: list[tuple[str, float]], known: dict[str, Hit], stamp: str | None = None,
                 need: int | None = None, lexical=None) -> list[Hit]:
        """Hits with text and metadata read from the store, in order; records deleted meanwhile are dropped.

        With `need`, records are read for the first `need` candidates only, and for the next ones only as far as
        some of those turned out deleted: the first `need` hits that exist, as reading them all would give.
        With `stamp` (the generation the lexical index matches), the records the index `lexical` keeps (`records`:
        its main segment's live chunks), then those read at that stamp before (`self.records`), are taken instead of
        reading the store."""
        found: dict[str, Hit] = dict(known)
        kept = getattr(lexical, "records", None) if stamp is not None else None
        need = len(ranked) if need is None else need
        asked, end = 0, min(need, len(ranked))
        while True:
            missing = [rid for rid, _ in ranked[asked:end] if rid not in found]
            for source in (kept, functools.partial(self.records.take, stamp) if stamp is not None else None):
                if missing and source is not None:
                    for rid, (text, metadata) in source(missing).items():
                        found[rid] = Hit(id=rid, text=text, metadata=metadata, score=0.0)
                    missing = [rid for rid in missing if rid not in found]
            if missing:
                got = self.store.get(missing)
                read = {}
                for rid, doc, meta in zip(got["ids"], got.get("documents") or [None] * len(got["ids"]),
                                          got["metadatas"]):
                    found[rid] = Hit(id=rid, text=doc or "", metadata=meta or {}, score=0.0)
                    read[rid] = (doc or "", meta or {})
                if stamp is not None:
                    self.records.put(stamp, read)
            present = sum(rid in found for rid, _ in ranked[:end])
            if present >= need or end >= len(ranked):
                break
            asked, end = end, min(len(ranked), end + need - present)
        hits = []
        for rid, score in ranked[:end]:
            hit = found.get(rid)
            if hit is not None:
                hit.score = score
                hits.append(hit)
        return hits

    # -- diversification ----------------------------------------------------------------------------------------
    def _mmr(self, query: str, hits: list[Hit], k: int) -> list[Hit]:
        """Maximal marginal relevance over the candidates: relevance to the query against redundancy with picks."""
        vectors = self.store.get_embeddings([h.id for h in hits])
        keep = [i for i, h in enumerate(hits) if h.id in vectors]
        if len(keep) <= k:
            return hits
        candidates = [hits[i] for i in keep]
        matrix = np.stack([vectors[h.id] for h in candidates])  # (N, D), unit rows
        relevance = matrix @ np.asarray(self.embedder.embed_query(query), dtype=np.float32)  # (N,)
        order = mmr_order(relevance, matrix, k, self.settings.retrieve.mmr_lambda)
        return [candidates[i] for i in order]


def source_filter(sources: list[str]) -> dict:
    """The Chroma `where` keeping only chunks of these sources."""
    return {"source": sources[0]} if len(sources) == 1 else {"source": {"$in": sources}}


def fuse_scores(dense: list[tuple[str, float]], lexical: list[tuple[str, float]], method: str = "zscore",
                dense_weight: float = 0.5, rrf_k: int = 60, depth: int | None = None) -> list[tuple[str, float]]:
    """Fuse two rankings (id, score), each best first, into one (id, fused score), best first.

    - "zscore" (default; best on both dev sets): each list's scores standardised over its candidates
      ((s - mean) / std), then `dense_weight * dense + (1 - dense_weight) * lexical`. A candidate missing from one
      list gets that list's lowest standardised score. Both lists are windows of the top `depth` chunks: a lexical
      list shorter than `depth` holds every chunk with a query term, so its window is padded with zero scores
      (which then also rank every absent chunk). A lone lexical match of a rare term thus stands out as it should.
    - "minmax": the same with scores scaled to [0, 1] by the list's min and max.
    - "rrf": reciprocal-rank fusion, sum of weight / (rrf_k + rank).
    Ties keep dense order first.
    """
    weights = (dense_weight, 1.0 - dense_weight)
    if method == "rrf":
        fused: dict[str, float] = {}
        for ranking, weight in zip((dense, lexical), weights):
            for rank, (rid, _) in enumerate(ranking, 1):
                fused[rid] = fused.get(rid, 0.0) + weight / (rrf_k + rank)
        return sorted(fused.items(), key=lambda item: item[1], reverse=True)
    if method not in ("zscore", "minmax"):
        raise RagError(f"unknown fusion method {method!r}: use zscore, minmax or rrf")
    dense_ids, lexical_ids = [rid for rid, _ in dense], [rid for rid, _ in lexical]
    position = {rid: n for n, rid in enumerate(dict.fromkeys(dense_ids + lexical_ids))}
    order = list(position)
    total = np.zeros(len(order), dtype=np.float64)
    for ranking, ids, weight, padded in ((dense, dense_ids, weights[0], False),
                                         (lexical, lexical_ids, weights[1], True)):
        if not ranking:
            continue
        scores = np.array([score for _, score in ranking], dtype=np.float64)
        padding = (depth - len(scores)) if padded and depth else 0
        floor = 0.0 if padding > 0 else None
        reference = np.concatenate([scores, np.zeros(padding)]) if padding > 0 else scores
        if method == "zscore":
            centre, scale = reference.mean(), reference.std() or 1.0
        else:
            centre, scale = reference.min(), (reference.max() - reference.min()) or 1.0
        normalised = (scores - centre) / scale
        absent = float(normalised.min()) if floor is None else (floor - centre) / scale
        column = np.full(len(order), absent, dtype=np.float64)
        column[[position[rid] for rid in ids]] = normalised
        total += weight * column
    ranked = np.argsort(-total, kind="stable")
    return list(zip([order[i] for i in ranked.tolist()], total[ranked].tolist()))


def mmr_order(relevance: np.ndarray, matrix: np.ndarray, k: int, lambda_: float) -> list[int]:
    """Indices of k rows picked greedily by lambda * relevance - (1 - lambda) * max similarity to those picked."""
    picked: list[int] = []
    best_sim = np.full(len(relevance), -np.inf, dtype=np.float32)
    available = np.ones(len(relevance), dtype=bool)
    for _ in range(min(k, len(relevance))):
        redundancy = np.where(np.isfinite(best_sim), best_sim, 0.0)
        score = np.where(available, lambda_ * relevance - (1 - lambda_) * redundancy, -np.inf)
        choice = int(np.argmax(score))
        picked.append(choice)
        available[choice] = False
        best_sim = np.maximum(best_sim, matrix @ matrix[choice])
    return picked

"""Retrieval evaluation on BEIR-format data: ingest the corpus, run the queries, score documents.

    result = evaluate_retrieval(RAG(), Path("../shared/eval/scifact"), queries, qrels)
    print(format_table(result))

Chunks are not documents: the retriever's chunk ranking is turned into a document ranking by keeping each
document's best chunk (the first time its `doc_id` appears), and enough chunks are retrieved to fill 100 documents.
"""

from __future__ import annotations

import csv
import math
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag_app.errors import RagError
from rag_app.eval.data import corpus_file, count_documents, default_collection, ingest_progress, read_jsonl
from rag_app.eval.metrics import evaluate_rankings, percentile

if TYPE_CHECKING:
    from rag_app.api import RAG

#: Documents ranked per query: enough for Recall@100.
DOCS_PER_QUERY = 100
#: Queries timed again at the app's own k for the serving latency.
LATENCY_QUERIES = 300


@dataclass
class Query:
    id: str
    text: str


@dataclass
class RetrievalResult:
    corpus: str
    collection: str
    mode: str
    metrics: dict[str, float]
    latency_ms: dict[str, float]  # p50 / p95 / mean of retrieve() at the app's k (settings.retrieve.k)
    eval_latency_ms: dict[str, float]  # the same for the evaluation's own calls, at chunks_per_query
    chunks_per_query: int
    chunks: int
    documents: int
    ingest_seconds: float
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- BEIR files ----------------------------------------------------------------------------------------------------
def load_queries(path: Path) -> list[Query]:
    rows = read_jsonl(path, "queries", "_id and text")
    return [Query(str(row["_id"]), str(row["text"])) for row in rows]


def load_qrels(path: Path) -> dict[str, dict[str, float]]:
    """`query-id corpus-id score` rows (tab-separated, with a header row) → {query: {document: grade}}."""
    qrels: dict[str, dict[str, float]] = defaultdict(dict)
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            for row in csv.reader(handle, delimiter="\t"):
                if len(row) < 3 or row[0] == "query-id":
                    continue
                qrels[row[0]][row[1]] = float(row[2])
    except (OSError, ValueError) as exc:
        raise RagError(f"cannot read qrels from {path} ({exc}): expected query-id, corpus-id, score columns") from exc
    return dict(qrels)


# -- running -------------------------------------------------------------------------------------------------------
def document_ranking(hits, limit: int = DOCS_PER_QUERY) -> list[str]:
    """Chunk hits (best first) → document ids (best first), each document at its best chunk's rank."""
    ranking: list[str] = []
    seen: set[str] = set()
    for hit in hits:
        doc_id = str(hit.metadata.get("doc_id", hit.id))
        if doc_id not in seen:
            seen.add(doc_id)
            ranking.append(doc_id)
            if len(ranking) >= limit:
                break
    return ranking


def evaluate_retrieval(rag: RAG, corpus: Path, queries: list[Query], qrels: dict[str, dict[str, float]], *,
                       collection: str | None = None, mode: str | None = None,
                       progress: Callable[[str], None] | None = None) -> RetrievalResult:
    """Ingest `corpus` (idempotent) into a collection, retrieve for every query and score the document rankings.

    Args:
        rag: the app, with the settings to evaluate (embedder, chunking, retrieval).
        corpus: a BEIR folder or its corpus.jsonl.
        queries: the queries to run (those without judgements are run but not scored).
        qrels: relevance judgements.
        collection: the collection to use (default: one named after the corpus and chunking recipe).
        mode: dense, lexical or hybrid (default: `settings.retrieve.mode`).
        progress: called with a line of text now and then.

    Returns:
        A RetrievalResult with nDCG@10, Recall@1/10/100, MRR@10 and latency percentiles.
    """
    say = progress or (lambda _line: None)
    corpus = corpus_file(corpus)
    collection = collection or default_collection(rag, corpus)
    mode = mode or rag.settings.retrieve.mode

    started = time.perf_counter()
    say(f"ingesting {corpus} into collection {collection!r} (unchanged files are skipped)")
    summary = rag.ingest([corpus], collection=collection,
                         progress=ingest_progress(say) if progress else None)
    if summary.failed:
        raise RagError(f"ingesting {corpus} failed: {summary.failed[0]['error']}")
    ingest_seconds = time.perf_counter() - started

    store = rag.store(collection)
    chunks = store.count()
    documents = count_documents(corpus)
    # Enough chunks to fill DOCS_PER_QUERY documents, with room for several chunks of one document.
    depth = min(chunks, math.ceil(DOCS_PER_QUERY * max(1.0, chunks / max(1, documents)) * 1.5))
    retriever = rag.retriever(collection)
    retriever.retrieve(queries[0].text if queries else "warm up", k=depth, mode=mode)  # loads models and indexes

    rankings: dict[str, list[str]] = {}
    latencies: list[float] = []
    for number, query in enumerate(queries, 1):
        t0 = time.perf_counter()
        hits = retriever.retrieve(query.text, k=depth, mode=mode)
        latencies.append((time.perf_counter() - t0) * 1000)
        rankings[query.id] = document_ranking(hits)
        if number % 100 == 0:
            say(f"{number}/{len(queries)} queries")

    # Serving latency: what the answer path pays, at the configured k (the evaluation depth above is far larger).
    serving: list[float] = []
    for query in queries[:LATENCY_QUERIES]:
        t0 = time.perf_counter()
        retriever.retrieve(query.text, mode=mode)
        serving.append((time.perf_counter() - t0) * 1000)

    asked = {q.id for q in queries}
    metrics = evaluate_rankings(rankings, {q: rel for q, rel in qrels.items() if q in asked})
    cfg = rag.settings.retrieve
    return RetrievalResult(
        corpus=str(corpus), collection=collection, mode=mode, metrics=metrics,
        latency_ms=_summary(serving), eval_latency_ms=_summary(latencies),
        chunks_per_query=depth, chunks=chunks, documents=documents, ingest_seconds=round(ingest_seconds, 2),
        settings={"k": cfg.k, "embedder": rag.embedder_for(collection).fingerprint,
                  "chunk_tokens": rag.settings.chunk.chunk_tokens,
                  "overlap_tokens": rag.settings.chunk.overlap_tokens, "fusion": cfg.fusion,
                  "dense_weight": cfg.dense_weight, "rrf_k": cfg.rrf_k, "bm25_k1": cfg.bm25_k1,
                  "bm25_b": cfg.bm25_b, "title_weight": cfg.title_weight},
    )


def _summary(latencies: list[float]) -> dict[str, float]:
    return {"p50": round(percentile(latencies, 50), 2), "p95": round(percentile(latencies, 95), 2),
            "mean": round(sum(latencies) / max(1, len(latencies)), 2), "n": len(latencies)}


def format_table(result: RetrievalResult) -> str:
    """A small text table of the figures."""
    m = result.metrics
    rows = [("queries", f"{int(m['queries'])}")]
    rows += [(name, f"{m[name]:.4f}") for name in ("ndcg@10", "recall@1", "recall@10", "recall@100", "mrr@10") if name in m]
    k = result.settings.get("k")
    rows += [(f"latency p50 (k={k})", f"{result.latency_ms['p50']:.1f} ms"),
             (f"latency p95 (k={k})", f"{result.latency_ms['p95']:.1f} ms"),
             (f"latency p50 (k={result.chunks_per_query})", f"{result.eval_latency_ms['p50']:.1f} ms"),
             (f"latency p95 (k={result.chunks_per_query})", f"{result.eval_latency_ms['p95']:.1f} ms")]
    width = max(len(name) for name, _ in rows)
    head = (f"{Path(result.corpus).parent.name or result.corpus} · mode={result.mode} · collection={result.collection} · "
            f"{result.chunks} chunks / {result.documents} docs · {result.chunks_per_query} chunks per query")
    return "\n".join([head] + [f"  {name.ljust(width)}  {value}" for name, value in rows])

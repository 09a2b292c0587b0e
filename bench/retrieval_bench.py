"""Query latency of `Retriever.retrieve()` at SciFact scale (~15k chunks) and at 100k chunks.

    .venv/bin/python bench/retrieval_bench.py                       # sizes 15000 and 100000, hybrid/dense/lexical
    .venv/bin/python bench/retrieval_bench.py --sizes 100000 --modes hybrid --queries 100

The corpus is synthetic but shaped like the real one: SciFact abstracts cut into ~60-word passages and replicated
(with a copy number in the title) until the size is reached, so BM25 postings grow as they would. Vectors are random
unit vectors of low intrinsic dimension (a random 384x32 projection of Gaussian points, since real embeddings are
far from uniform on the sphere and uniform ones are HNSW's worst case), written straight into a Chroma collection
(no embedding of 100k chunks on 2 cores); queries are the
SciFact dev claims, embedded by the real default embedder, so the figure is end to end: query embedding, HNSW
search, BM25 search, fusion and reading texts back. Stores persist under --home and are reused between runs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SCIFACT = REPO.parent / "shared" / "eval" / "scifact"
TARGETS_MS = {15000: 20.0, 100000: 60.0}  # p50 targets from issue 6


def passages(corpus: Path, words: int = 60) -> list[tuple[str, str, str]]:
    """(doc_id, title, text) passages cut from the SciFact abstracts."""
    out = []
    with open(corpus, encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            tokens = row["text"].split()
            for start in range(0, max(1, len(tokens)), words):
                out.append((row["_id"], row.get("title", ""), " ".join(tokens[start : start + words])))
    return out


def fill_store(settings, size: int, dim: int, seed: int = 0):
    """A collection of `size` synthetic chunks (reused when it already holds them)."""
    from rag_app.components.store import VectorStore

    # The writes refresh no lexical index (no upkeep is registered on a bare store), so main() can time its build.
    writer = VectorStore(settings, "bench-random-vectors", f"bench-{size}")
    store = VectorStore(settings, "bench-random-vectors", f"bench-{size}")
    if store.count() == size:
        return store
    base = passages(SCIFACT / "corpus.jsonl")
    rng = np.random.default_rng(seed)
    projection = rng.standard_normal((32, dim)).astype(np.float32)  # (32, D): low-rank structure
    batch = 5000
    print(f"  writing {size} synthetic chunks ...", file=sys.stderr, flush=True)
    with writer.write():
        _write_synthetic(writer, base, rng, projection, size, batch)
    return store


def _write_synthetic(store, base, rng, projection, size: int, batch: int) -> None:
    for start in range(store.count(), size, batch):
        n = min(batch, size - start)
        vectors = rng.standard_normal((n, 32)).astype(np.float32) @ projection  # (n, D)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        ids, texts, metas = [], [], []
        for i in range(start, start + n):
            doc_id, title, text = base[i % len(base)]
            copy = i // len(base)
            ids.append(f"c{i}")
            texts.append(text)
            metas.append({"doc_id": f"{doc_id}-{copy}", "title": f"{title} ({copy})", "section": "",
                          "source": f"part{copy}/corpus.jsonl"})
        store.upsert(ids, vectors, texts, metas)


def time_queries(retriever, queries: list[str], k: int, mode: str) -> list[float]:
    retriever.retrieve(queries[0], k=k, mode=mode)  # warm: loads the model and the index
    out = []
    for query in queries:
        t0 = time.perf_counter()
        retriever.retrieve(query, k=k, mode=mode)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="15000,100000", help="comma-separated chunk counts")
    parser.add_argument("--modes", default="hybrid,dense,lexical")
    parser.add_argument("--queries", type=int, default=200, help="SciFact dev claims to time")
    parser.add_argument("--k", type=int, default=10, help="chunks per query")
    parser.add_argument("--home", help="where the synthetic stores live (default: a temp folder, removed after)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    from rag_app.components.embedder import get_embedder
    from rag_app.components.lexical_upkeep import lexical_index
    from rag_app.services.retrieve import Retriever
    from rag_app.settings import Settings

    home = Path(args.home) if args.home else Path(tempfile.mkdtemp(prefix="rag-bench-"))
    settings = Settings(home=home)
    embedder = get_embedder(settings)
    with open(SCIFACT / "queries_dev.jsonl", encoding="utf-8") as handle:
        queries = [json.loads(line)["text"] for line in handle][: args.queries]

    rows = []
    try:
        for size in (int(s) for s in args.sizes.split(",")):
            store = fill_store(settings, size, embedder.dim)
            t0 = time.perf_counter()
            lexical = lexical_index(settings, store)
            lexical.current()
            build_s = time.perf_counter() - t0
            retriever = Retriever(settings, embedder, store, lexical=lexical)
            results = {mode: time_queries(retriever, queries, args.k, mode) for mode in args.modes.split(",")}
            embed_ms = []  # after the modes, so first-call warm-up of the embedder is not counted here
            for query in queries[:50]:
                t = time.perf_counter()
                embedder.embed_query(query)
                embed_ms.append((time.perf_counter() - t) * 1000)
            for mode, times in results.items():
                p50, p95 = statistics.median(times), float(np.percentile(times, 95))
                rows.append({"chunks": size, "mode": mode, "k": args.k, "p50_ms": round(p50, 1),
                             "p95_ms": round(p95, 1), "target_p50_ms": TARGETS_MS.get(size),
                             "query_embedding_p50_ms": round(statistics.median(embed_ms), 1),
                             "lexical_index_ready_s": round(build_s, 1)})
                target = TARGETS_MS.get(size)
                verdict = "" if target is None else f"  (target p50 <= {target:.0f} ms: {'met' if p50 <= target else 'MISSED'})"
                print(f"{size:>7} chunks  {mode:<7}  p50 {p50:6.1f} ms  p95 {p95:6.1f} ms{verdict}", flush=True)
            print(f"{size:>7} chunks  query embedding alone p50 {statistics.median(embed_ms):.1f} ms; "
                  f"lexical index ready in {build_s:.1f} s (built or loaded)", flush=True)
    finally:
        if not args.home:
            shutil.rmtree(home, ignore_errors=True)
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores")
    if args.json:
        print(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

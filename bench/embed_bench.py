"""Embedder backends side by side: texts/s, tokens/s, CPU-seconds and cosine to torch fp32.

    python bench/embed_bench.py [--limit 256] [--reps 2] [--backends torch-fp32,torch-bf16,openvino,...]
                                [--ndcg 200] [--threads 0]

Texts are SciFact abstracts (title + text, truncated by the model at its 256-token window). Variants run interleaved
in one process, `--reps` rounds, and the best round is reported, so load from other processes hits all alike.
tok/cpu-s (tokens per CPU-second of this process) is the steadiest figure on a shared machine.

`--ndcg N` also runs dense retrieval (brute force, numpy) for the first N SciFact dev queries over a sub-corpus
(their relevant abstracts plus 4 distractors each) and prints nDCG@10 per backend: int8 drift shows up there.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DEFAULT_DIR = REPO.parent / "shared" / "eval" / "scifact"

#: name → (backend, dtype)
VARIANTS = {
    "torch-fp32": ("torch", "float32"),
    "torch-bf16": ("torch", "bfloat16"),
    "openvino-fp32": ("openvino", "float32"),
    "openvino-bf16": ("openvino", "bfloat16"),
    "openvino-bf16-f32-out": ("openvino", "bfloat16"),  # the same asking for an f32 result (before: an f32 tail)
    "openvino-int8": ("openvino-int8", "auto"),  # NNCF static int8; the unquantised ops in bf16 where fast (not AMX)
    "openvino-int8-bf16": ("openvino-int8", "bfloat16"),  # the same, unquantised ops in bf16 wherever it is fast
    "openvino-int8-f32": ("openvino-int8", "float32"),  # the same, unquantised ops in fp32
    "openvino-int8-f32-out": ("openvino-int8", "bfloat16"),  # int8-bf16 asking for an f32 result (before: f32 tail)
    "onnx-fp32": ("onnx", "auto"),
    "onnx-int8": ("onnx-int8", "auto"),
}


def load_corpus(path: Path, limit: int | None = None) -> list[dict]:
    docs = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                docs.append(json.loads(line))
                if limit and len(docs) >= limit:
                    break
    return docs


def doc_text(doc: dict) -> str:
    return f"{doc.get('title', '')}\n{doc.get('text', '')}".strip()


def make_embedder(variant: str, cache_dir: str, threads: int):
    from rag_app.components.embedder import SentenceTransformerEmbedder
    from rag_app.settings import PACKAGED_EMBEDDER

    backend, dtype = VARIANTS[variant]
    embedder = SentenceTransformerEmbedder(PACKAGED_EMBEDDER, device="cpu", dtype=dtype, backend=backend,
                                           cache_dir=cache_dir, threads=threads)
    if variant.endswith("-f32-out"):  # the shipped runner asking for an f32 result, as before bf16 to the output
        from rag_app.components.embedder.export import _OpenVINORunner

        embedder.embed(["load"])
        runner = embedder._runner
        embedder._runner = _OpenVINORunner(runner.xml, runner.input_names, runner.precision, runner.threads)
    return embedder


def ndcg_at_10(scores: np.ndarray, doc_ids: list[str], qrels: dict[str, set[str]], query_ids: list[str]) -> float:
    total = 0.0
    for row, qid in enumerate(query_ids):
        relevant = qrels[qid]
        top = np.argsort(-scores[row])[:10]
        dcg = sum(1.0 / math.log2(rank + 2) for rank, i in enumerate(top) if doc_ids[i] in relevant)
        ideal = sum(1.0 / math.log2(rank + 2) for rank in range(min(10, len(relevant))))
        total += dcg / ideal
    return total / len(query_ids)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DIR, help="folder with corpus.jsonl (and dev queries)")
    parser.add_argument("--limit", type=int, default=256, help="abstracts to embed per variant")
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--backends", default=",".join(VARIANTS), help="comma-separated: " + ", ".join(VARIANTS))
    parser.add_argument("--threads", type=int, default=0, help="inference threads (0: runtime default)")
    parser.add_argument("--ndcg", type=int, default=0, help="also nDCG@10 on this many dev queries (0: skip)")
    parser.add_argument("--cache-dir", default=None, help="where exports are cached (default: a temp folder)")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

    variants = [v.strip() for v in args.backends.split(",") if v.strip()]
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variants {sorted(unknown)}")
    if "torch-fp32" not in variants:
        variants.insert(0, "torch-fp32")  # the reference for cosine
    cache_dir = args.cache_dir or tempfile.mkdtemp(prefix="embed-bench-")
    texts = [doc_text(d) for d in load_corpus(args.data / "corpus.jsonl", args.limit)]

    embedders = {}
    for variant in variants:
        started = time.perf_counter()
        try:
            embedder = make_embedder(variant, cache_dir, args.threads)
            embedder.embed(texts[:4])  # load / export / warm up
        except Exception as exc:  # noqa: BLE001 - a missing optional backend is reported, not fatal
            print(f"{variant:14s} unavailable: {type(exc).__name__}: {exc}")
            continue
        embedders[variant] = embedder
        print(f"{variant:14s} ready in {time.perf_counter() - started:5.1f} s  {embedder.describe()}", flush=True)

    first = next(iter(embedders.values()))
    n_tokens = sum(min(first.count_tokens(t) + first.special_tokens, first.max_tokens) for t in texts)
    print(f"\n{len(texts)} texts, {n_tokens} tokens (after truncation), {args.reps} interleaved rounds; "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs", flush=True)
    wall: dict[str, list[float]] = {v: [] for v in embedders}
    cpu: dict[str, list[float]] = {v: [] for v in embedders}
    vectors: dict[str, np.ndarray] = {}
    for _ in range(args.reps):
        for variant, embedder in embedders.items():
            t0, c0 = time.perf_counter(), time.process_time()
            vectors[variant] = embedder.embed(texts)
            wall[variant].append(time.perf_counter() - t0)
            cpu[variant].append(time.process_time() - c0)

    reference = vectors["torch-fp32"]
    base = min(cpu["torch-fp32"])
    print(f"\n{'variant':14s} {'texts/s':>8s} {'tok/s':>8s} {'tok/cpu-s':>9s} {'vs fp32':>7s} "
          f"{'cos min':>8s} {'cos mean':>9s}")
    for variant in embedders:
        best_wall, best_cpu = min(wall[variant]), min(cpu[variant])
        cosine = (vectors[variant] * reference).sum(axis=1)
        print(f"{variant:14s} {len(texts) / best_wall:8.1f} {n_tokens / best_wall:8.0f} {n_tokens / best_cpu:9.0f} "
              f"{base / best_cpu:6.2f}x {cosine.min():8.5f} {cosine.mean():9.6f}")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

    if args.ndcg:
        queries = {q["_id"]: q["text"] for q in load_corpus(args.data / "queries_dev.jsonl")}
        qrels: dict[str, set[str]] = {}
        with open(args.data / "qrels_dev.tsv", encoding="utf-8") as handle:
            next(handle)
            for line in handle:
                qid, did, score = line.split("\t")
                if int(score) > 0:
                    qrels.setdefault(qid, set()).add(did)
        query_ids = [q for q in queries if q in qrels][: args.ndcg]
        wanted = set().union(*(qrels[q] for q in query_ids))
        corpus = load_corpus(args.data / "corpus.jsonl")
        others = [d for d in corpus if d["_id"] not in wanted]
        rng = np.random.default_rng(0)
        picked = [d for d in corpus if d["_id"] in wanted] + [others[i] for i in rng.choice(
            len(others), size=min(len(others), 4 * len(query_ids)), replace=False)]
        doc_ids = [d["_id"] for d in picked]
        print(f"\nnDCG@10, dense, {len(query_ids)} dev queries over {len(picked)} abstracts")
        for variant, embedder in embedders.items():
            docs = embedder.embed([doc_text(d) for d in picked])
            qs = embedder.embed([queries[q] for q in query_ids])
            print(f"{variant:14s} nDCG@10 {ndcg_at_10(qs @ docs.T, doc_ids, qrels, query_ids):.4f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""A/B of the LM's length bucketing (`LENGTH_BUCKET`): the same questions answered with prompts run unpadded and
padded, alternating per question in one process; reports identical answers, short-answer F1 each way, and latency.

    python bench/length_bucket_ab.py [--corpus ../shared/eval/squad] [--questions 120]

Padding at the end of a causal pass leaves every earlier position's result unchanged in exact arithmetic; in bf16
the kernels may block a longer matmul differently, so an answer could differ by rounding: this counts how often.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=REPO.parent / "shared" / "eval" / "squad")
    parser.add_argument("--questions", type=int, default=120)
    parser.add_argument("--home", type=Path)
    args = parser.parse_args()

    import rag_app.components.llm as llm_module
    from rag_app.api import RAG
    from rag_app.eval.answers import best_over, f1_score, load_answer_queries
    from rag_app.eval.retrieval import corpus_file, default_collection
    from rag_app.settings import Settings

    bucketed = llm_module.padded_length
    unpadded = lambda n: n  # noqa: E731 - the baseline: every prompt at its own length
    queries = [q for q in load_answer_queries(args.corpus / "queries_dev.jsonl") if not q.unanswerable]
    queries = queries[: args.questions]
    rag = RAG(Settings(home=args.home or Path(tempfile.mkdtemp()) / "home"))
    corpus = corpus_file(args.corpus)
    collection = default_collection(rag, corpus)
    rag.ingest([corpus], collection=collection)
    rag.ask(queries[0].text, collection=collection)  # warm-up
    rows = {"unpadded": [], "bucketed": []}
    same = 0
    for i, query in enumerate(queries):
        order = [("unpadded", unpadded), ("bucketed", bucketed)]
        replies = {}
        for name, fn in order if i % 2 else order[::-1]:
            llm_module.padded_length = fn
            started = time.perf_counter()
            answer = rag.ask(query.text, collection=collection)
            seconds = time.perf_counter() - started
            replies[name] = answer
            short = answer.short or answer.text
            rows[name].append((best_over(f1_score, short, query.answers), seconds))
        same += replies["unpadded"].text == replies["bucketed"].text
    llm_module.padded_length = bucketed
    report = {"questions": len(queries), "identical_answers": same,
              **{name: {"f1": round(100 * statistics.fmean(f for f, _ in r), 2),
                        "p50_s": round(statistics.median(s for _, s in r), 3)} for name, r in rows.items()}}
    print(json.dumps(report))


if __name__ == "__main__":
    main()

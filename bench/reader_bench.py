"""Answer latency of the span readers side by side: the same squad dev questions asked in one process, the readers
alternating question by question, so both see the same load.

    RAG_HOME=<home with the squad collection> python bench/reader_bench.py [--limit 40] [--json out.json]

The collection is the one `rag eval answers --corpus ../shared/eval/squad` builds (ingested here if missing).
Reports p50/p95 of the whole answer and of the first streamed piece per reader, with the machine's load and CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

SQUAD = Path(__file__).resolve().parents[2] / "shared" / "eval" / "squad"


def main() -> int:
    from rag_app.api import RAG
    from rag_app.eval.answers import load_answer_queries
    from rag_app.eval.data import corpus_file, default_collection
    from rag_app.services.answer import Answer, AnswerService
    from rag_app.settings import Settings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=40)
    parser.add_argument("--readers", default="greedy,likelihood")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    corpus = corpus_file(SQUAD)
    queries = load_answer_queries(SQUAD / "queries_dev.jsonl")[: args.limit]
    rag = RAG(Settings())
    collection = default_collection(rag, corpus)
    rag.ingest([corpus], collection=collection)
    retriever = rag.retriever(collection)
    readers = args.readers.split(",")
    services = {r: AnswerService(rag.settings.with_overrides(**{"answer.reader": r}), retriever, rag.llm, rag.embedder)
                for r in readers}
    for service in services.values():
        service.ask(queries[0].text)  # warm-up
    load_before = os.getloadavg()
    timings: dict[str, dict[str, list[float]]] = {r: {"total": [], "first": []} for r in readers}
    for query in queries:
        for reader, service in services.items():
            started = time.perf_counter()
            first = None
            for item in service.stream(query.text):
                if first is None:
                    first = time.perf_counter() - started
                if isinstance(item, Answer):
                    answer = item
            timings[reader]["total"].append(time.perf_counter() - started)
            timings[reader]["first"].append(answer.timings.first_token_ms / 1000 if answer.timings.first_token_ms
                                            else first)

    def pct(values, q):
        values = sorted(values)
        return round(values[min(len(values) - 1, int(q * len(values)))], 3)

    result = {"questions": len(queries), "load_before": load_before, "load_after": os.getloadavg(),
              "cpu_flags": sorted({f for f in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.split()
                                   if f.startswith(("avx", "amx"))}),
              "readers": {r: {"p50_s": round(statistics.median(t["total"]), 3), "p95_s": pct(t["total"], 0.95),
                              "first_token_p50_s": round(statistics.median(t["first"]), 3)}
                          for r, t in timings.items()}}
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

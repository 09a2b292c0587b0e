"""End-to-end answers over a folder of real ML-paper PDFs (`../shared/eval/papers_dev`), through the Python API.

    python bench/papers_eval.py --home /tmp/papers-home [--details rows.jsonl] [--json]

Ingests the 12 PDFs (not the folder's README or questions) into the collection `papers_dev_pdfs` of `--home` (reused when unchanged), asks the 72 questions, and
scores what a user is shown:
- **contained+cited**: a gold answer (normalised as SQuAD does) is in the reply and the right file is among the cited
  sources (the answer's `file`);
- short-answer EM/F1 (refused: 0), refused shares of answerable and unanswerable questions, latency.
Dev only: the held-out papers are never read.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

PAPERS = Path(__file__).resolve().parents[2] / "shared" / "eval" / "papers_dev"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", required=True)
    parser.add_argument("--papers", type=Path, default=PAPERS)
    parser.add_argument("--details", type=Path)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from rag_app.api import RAG
    from rag_app.eval.answers import best_over, contains, exact_match, f1_score
    from rag_app.text import strip_citations

    rag = RAG(home=args.home, collection="papers_dev_pdfs")
    started = time.perf_counter()
    summary = rag.ingest(sorted(args.papers.glob("*.pdf")))  # the PDFs only: questions.jsonl holds the answers
    ingest_s = time.perf_counter() - started
    questions = [json.loads(line) for line in open(args.papers / "questions.jsonl", encoding="utf-8") if line.strip()]
    rag.ask(questions[0]["q"])  # warm-up, not timed
    rows = []
    for q in questions:
        answer = rag.ask(q["q"])
        golds = q.get("answers") or []
        reply = "" if answer.refused else strip_citations(answer.text)
        short = "" if answer.refused else answer.short
        cited_files = {Path(s.source).name for s in answer.cited_sources}
        row = {"id": q["id"], "question": q["q"], "answerable": bool(golds), "file": q.get("file"),
               "refused": answer.refused, "reply": answer.text, "short": short,
               "contained": best_over(contains, reply, golds) if golds else 0.0,
               "cited_right_file": q.get("file") in cited_files,
               "em": best_over(exact_match, short, golds) if golds else 0.0,
               "f1": best_over(f1_score, short, golds) if golds else 0.0,
               "total_ms": answer.timings.total_ms, "relevance": answer.extra.get("relevance"),
               "span": answer.extra.get("span"), "form": answer.extra.get("form"),
               "offered_contains": [best_over(contains, t, golds) for t in answer.extra.get("offered", [])]
               if golds else []}
        row["contained_cited"] = float(row["contained"] > 0 and row["cited_right_file"])
        rows.append(row)
        print(f"{q['id']:10} {'REFUSED' if answer.refused else answer.short[:60]!s:62} "
              f"{'ok' if row['contained_cited'] else ''}", file=sys.stderr)
    has = [r for r in rows if r["answerable"]]
    none = [r for r in rows if not r["answerable"]]
    result = {
        "collection": "papers_dev_pdfs", "model": rag.llm.name, "files": summary.files.seen,
        "ingest_seconds": round(ingest_s, 1),
        "answerable": len(has), "unanswerable": len(none),
        "contained_cited": round(100 * statistics.fmean(r["contained_cited"] for r in has), 2),
        "contained": round(100 * statistics.fmean(r["contained"] for r in has), 2),
        "em": round(100 * statistics.fmean(r["em"] for r in has), 2),
        "f1": round(100 * statistics.fmean(r["f1"] for r in has), 2),
        "answerable_refused": sum(r["refused"] for r in has),
        "unanswerable_refused": sum(r["refused"] for r in none),
        "p50_ms": round(statistics.median(r["total_ms"] for r in rows), 1),
    }
    if args.details:
        with open(args.details, "w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row) + "\n")
    print(json.dumps(result, indent=1) if args.json else "\n".join(f"{k:22} {v}" for k, v in result.items()))


if __name__ == "__main__":
    main()

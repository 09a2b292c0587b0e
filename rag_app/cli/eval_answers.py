"""`rag eval answers`: EM, F1, answer-contained, refusal rate and latency on queries with gold `answers`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rag_app.cli import add_store_options, settings_from_args


def register(eval_subparsers) -> None:
    parser = eval_subparsers.add_parser(
        "answers", help="score answers on BEIR-format data whose queries carry `answers` (e.g. SQuAD)",
        description="Ingest a BEIR corpus into a collection (reused when unchanged), ask every query that has an "
                    "`answers` field, and report SQuAD EM/F1 of the short answer, EM/F1 and answer-contained of the "
                    "whole reply, the refusal rate and latency (total and time to first token). With "
                    "--unanswerable, each question is asked again with its article hidden from retrieval "
                    "(documents sharing the gold document's title), where the right outcome is a refusal. Queries "
                    "marked `\"unanswerable\": true` (SQuAD 2.0 style) are asked over the whole corpus and scored "
                    "as SQuAD 2.0 does: right only when refused.",
    )
    parser.add_argument("--corpus", required=True, type=Path, help="folder holding corpus.jsonl (or the file itself)")
    parser.add_argument("--queries", type=Path, help="queries JSONL (_id, text, answers[, corpus_id]); "
                                                     "default: queries_dev.jsonl beside the corpus")
    parser.add_argument("-k", type=int, help="chunks retrieved per question (default: RAG_RETRIEVE__K or 6)")
    parser.add_argument("--limit", type=int, help="ask only the first N questions")
    parser.add_argument("--unanswerable", action="store_true",
                        help="also ask each question with its article hidden; reports the refusal rate there")
    parser.add_argument("--only-unanswerable", action="store_true", help="run only the hidden-article pass")
    parser.add_argument("--details", type=Path, help="write one JSON line per question (reply, scores, timings) here")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    add_store_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rag_app.api import RAG
    from rag_app.errors import RagError
    from rag_app.eval.answers import evaluate_answers, format_table, load_answer_queries

    settings = settings_from_args(args)
    folder = args.corpus if args.corpus.is_dir() else args.corpus.parent
    queries_path = args.queries or folder / "queries_dev.jsonl"
    if not queries_path.is_file():
        raise RagError(f"--queries: no file at {queries_path}")
    queries = load_answer_queries(queries_path)
    if args.limit is not None:
        if args.limit < 1:
            raise RagError("--limit must be at least 1")
        queries = queries[: args.limit]
    result = evaluate_answers(
        RAG(settings), args.corpus, queries, collection=args.collection, k=args.k,
        answerable=not args.only_unanswerable, unanswerable=args.unanswerable or args.only_unanswerable,
        progress=lambda line: print(line, file=sys.stderr, flush=True),
    )
    if args.details:
        with open(args.details, "w", encoding="utf-8") as handle:
            for label, part in (("answerable", result.answerable), ("unanswerable", result.unanswerable),
                                ("adversarial", result.adversarial)):
                for row in part.rows if part else []:
                    handle.write(json.dumps({"pass": label, **row}) + "\n")
    print(json.dumps(result.to_dict(), indent=2) if args.json else format_table(result))
    return 0

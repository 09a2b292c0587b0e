"""`rag eval open`: open questions with reference answers: answered share, cosine, ROUGE-L, citation support."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rag_app.cli import add_store_options, settings_from_args


def register(eval_subparsers) -> None:
    parser = eval_subparsers.add_parser(
        "open", help="score answers to open questions against reference answers (e.g. genai_dev)",
        description="Ask every question (JSON lines with _id, text, reference) over a collection, by default the "
                    "bundled corpus, and report the share answered, the mean cosine between reply and reference, "
                    "ROUGE-L recall, and the share of reply sentences supported by the source they cite.")
    parser.add_argument("--queries", required=True, type=Path, help="questions JSONL (_id, text, reference)")
    parser.add_argument("--corpus", type=Path, help="a folder to ingest first (default: the bundled corpus)")
    parser.add_argument("--limit", type=int, help="ask only the first N questions")
    parser.add_argument("--details", type=Path, help="write one JSON line per question here")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    add_store_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rag_app.api import RAG
    from rag_app.errors import RagError
    from rag_app.eval.open_answers import evaluate_open, format_table, load_open_queries

    queries = load_open_queries(args.queries)
    if args.limit is not None:
        if args.limit < 1:
            raise RagError("--limit must be at least 1")
        queries = queries[: args.limit]
    result = evaluate_open(RAG(settings_from_args(args)), queries, collection=args.collection, corpus=args.corpus,
                           progress=lambda line: print(line, file=sys.stderr, flush=True))
    if args.details:
        with open(args.details, "w", encoding="utf-8") as handle:
            for row in result.rows:
                handle.write(json.dumps(row) + "\n")
    print(json.dumps(result.to_dict(), indent=2) if args.json else format_table(result))
    return 0

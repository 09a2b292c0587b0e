"""`rag eval retrieval`: nDCG@10, Recall@k, MRR@10 and latency on a BEIR-format data set."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rag_app.cli import add_store_options, settings_from_args


def register(eval_subparsers) -> None:
    parser = eval_subparsers.add_parser(
        "retrieval", help="score retrieval on BEIR-format data (corpus.jsonl, queries, qrels)",
        description="Ingest a BEIR corpus into a collection (reused when unchanged), run the queries and report "
                    "document-level nDCG@10, Recall@1/10/100, MRR@10 and query latency.",
    )
    parser.add_argument("--corpus", required=True, type=Path, help="folder holding corpus.jsonl (or the file itself)")
    parser.add_argument("--queries", type=Path, help="queries JSONL (_id, text); default: queries_dev.jsonl beside it")
    parser.add_argument("--qrels", type=Path, help="qrels TSV (query-id, corpus-id, score); default: qrels_dev.tsv")
    parser.add_argument("--mode", choices=["dense", "lexical", "hybrid"], help="default: RAG_RETRIEVE__MODE or hybrid")
    parser.add_argument("--limit", type=int, help="run only the first N queries")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    add_store_options(parser)
    parser.set_defaults(func=run)


def _beside(corpus: Path, given: Path | None, name: str) -> Path:
    if given is not None:
        return given
    folder = corpus if corpus.is_dir() else corpus.parent
    return folder / name


def run(args: argparse.Namespace) -> int:
    from rag_app.api import RAG
    from rag_app.errors import RagError
    from rag_app.eval.retrieval import evaluate_retrieval, format_table, load_qrels, load_queries

    settings = settings_from_args(args)
    queries_path = _beside(args.corpus, args.queries, "queries_dev.jsonl")
    qrels_path = _beside(args.corpus, args.qrels, "qrels_dev.tsv")
    for label, path in (("--queries", queries_path), ("--qrels", qrels_path)):
        if not path.is_file():
            raise RagError(f"{label}: no file at {path}")
    queries = load_queries(queries_path)
    if args.limit is not None:
        if args.limit < 1:
            raise RagError("--limit must be at least 1")
        queries = queries[: args.limit]
    rag = RAG(settings)
    result = evaluate_retrieval(
        rag, args.corpus, queries, load_qrels(qrels_path), collection=args.collection, mode=args.mode,
        progress=lambda line: print(line, file=sys.stderr, flush=True),
    )
    print(json.dumps(result.to_dict(), indent=2) if args.json else format_table(result))
    return 0

"""`rag ingest PATH...`: incremental ingestion with progress; `--json` prints the summary."""

from __future__ import annotations

import json
import sys

from rag_app.cli import add_store_options, settings_from_args


def register(subparsers) -> None:
    parser = subparsers.add_parser("ingest", help="ingest files and folders into a collection (incremental)")
    parser.add_argument("paths", nargs="+", help="files or folders to ingest")
    add_store_options(parser)
    parser.add_argument("--prune", action="store_true", help="remove chunks of files that no longer exist under the given folders")
    parser.add_argument("--rebuild", action="store_true", help="drop the collection first (e.g. after changing the embedder)")
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args) -> int:
    from rag_app.api import RAG
    from rag_app.cli.progress import IngestBar

    settings = settings_from_args(args)
    rag = RAG(settings)
    if args.rebuild and rag.drop_collection():
        print(f"dropped collection {settings.store.collection!r}", file=sys.stderr)
    bar = IngestBar(disable=args.quiet)
    try:
        summary = rag.ingest(args.paths, prune=args.prune, progress=bar)
    finally:
        bar.close()
    if args.json:
        print(json.dumps(summary.to_dict(), ensure_ascii=False))
    else:
        files = summary.files
        print(f"{summary.collection}: {files.seen} files seen, {files.added} added, {files.updated} updated, "
              f"{files.unchanged} unchanged, {files.deleted} deleted, {files.failed} failed, {files.skipped} skipped; "
              f"{summary.chunks_written} chunks written in {summary.seconds:.1f} s")
        for failure in summary.failed:
            print(f"  failed: {failure['path']}: {failure['error']}", file=sys.stderr)
        for skip in summary.skipped[:20]:
            print(f"  skipped: {skip['path']}: {skip['error']}", file=sys.stderr)
        if len(summary.skipped) > 20:
            print(f"  ... and {len(summary.skipped) - 20} more skipped", file=sys.stderr)
    # Documented policy: 0 when every supported file was ingested, 1 when some failed (the rest were ingested).
    return 1 if summary.failed else 0

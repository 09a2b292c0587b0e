"""Run by test_crash_safety_documents: `python documents_child.py CORPUS` ingests the corpus as LangChain documents
with prune, in the profile and home of its environment, printing `chunks=N` progress on stderr (what the test kills
on) and the summary as JSON on stdout."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from reliability_support import corpus_documents

from rag_app.api import RAG


def main() -> None:
    rag = RAG()
    summary = rag.ingest_documents(corpus_documents(Path(sys.argv[1])), prune=True,
                                   progress=lambda p: print(f"chunks={p.chunks_written}", file=sys.stderr, flush=True))
    print(json.dumps(summary.to_dict()))


if __name__ == "__main__":
    main()

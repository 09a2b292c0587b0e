"""The evaluation data on disk (BEIR folders: corpus.jsonl, queries JSONL, qrels) and the collection it is ingested
into: shared by the retrieval, answer and open-answer evals."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag_app.errors import RagError

if TYPE_CHECKING:
    from rag_app.api import RAG


def corpus_file(corpus: Path) -> Path:
    """`DIR/corpus.jsonl` for a BEIR folder (the queries and qrels beside it must not be ingested), or the file."""
    corpus = Path(corpus)
    if corpus.is_dir():
        corpus = corpus / "corpus.jsonl"
    if not corpus.is_file():
        raise RagError(f"no BEIR corpus at {corpus}: pass a folder holding corpus.jsonl, or the .jsonl file")
    return corpus


def read_jsonl(path: Path, what: str, fields: str) -> list[dict[str, Any]]:
    """The rows of a JSON-lines file (blank lines skipped).

    Raises:
        RagError: the file cannot be read or a line is not JSON; the message says which `fields` are expected.
    """
    try:
        with open(path, encoding="utf-8") as handle:
            return [json.loads(line) for line in handle if line.strip()]
    except (OSError, json.JSONDecodeError) as exc:
        raise RagError(f"cannot read {what} from {path} ({exc}): expected JSON lines with {fields}") from exc


def count_documents(corpus: Path) -> int:
    with open(corpus, encoding="utf-8") as handle:
        return sum(1 for line in handle if line.strip())


def default_collection(rag: RAG, corpus: Path) -> str:
    """`eval-<folder>-<hash>`: the hash covers what the chunks depend on (the embedder a new collection gets, chunk
    sizes), so a collection is reused only when it was built the same way."""
    settings = rag.settings
    recipe = f"{rag.embedder_for(new=True).fingerprint}|{settings.chunk.chunk_tokens}|{settings.chunk.overlap_tokens}"
    folder = corpus.parent.name if corpus.name == "corpus.jsonl" else corpus.stem
    slug = "".join(c if c.isalnum() or c in "-_" else "-" for c in folder)[:40].strip("-_") or "corpus"
    return f"eval-{slug}-{hashlib.sha256(recipe.encode()).hexdigest()[:8]}"


def ingest_progress(say: Callable[[str], None]):
    """An ingest progress callback that says how many chunks are written, at most every 10 s."""
    last = [0.0]

    def report(p) -> None:
        if time.monotonic() - last[0] >= 10:
            last[0] = time.monotonic()
            say(f"ingest: {p.chunks_written} chunks written")

    return report

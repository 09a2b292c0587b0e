"""BEIR-style corpus.jsonl: one Document per record, keeping the record's `_id` as the document id."""

from __future__ import annotations

import json

from ingest.loaders.base import Loader
from ingest.loaders.decoding import decode_text
from ingest.types import Document, LoadError, Segment


class BeirJsonlLoader(Loader):
    """Each non-blank line is a JSON object with `_id`, `text` and an optional `title`; a blank text uses the title."""

    suffixes = frozenset({".jsonl"})

    def load(self, data: bytes, rel: str, suffix: str) -> list[Document]:
        text = decode_text(data)  # no whitespace check: a file of blank lines has "no records"
        docs = []
        loads = json.loads
        for number, line in enumerate(text.split("\n"), 1):
            if not line.strip():
                continue
            try:
                record = loads(line)
            except json.JSONDecodeError as exc:
                raise LoadError(f"invalid JSON on line {number}: {exc.msg}") from exc
            if not isinstance(record, dict) or "_id" not in record or "text" not in record:
                raise LoadError(f"line {number} has no '_id' and 'text' (expected a BEIR-style corpus.jsonl)")
            title = str(record.get("title") or "")
            body = str(record["text"] or "")
            if not body.strip():
                body = title
            segment = Segment(text=body, start_line=number, end_line=number, start_char=0, end_char=len(body))
            docs.append(Document(doc_id=str(record["_id"]), title=title, kind="jsonl", segments=[segment]))
        if not docs:
            raise LoadError("no text (no records)")
        return docs


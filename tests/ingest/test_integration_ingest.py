"""The real packaged embedder on the fixture tree, end to end through the CLI: counts, metadata, idempotence."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.expected import EXPECTED

pytestmark = pytest.mark.integration
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "docs"


def rag_cli(*args: str, home: Path) -> subprocess.CompletedProcess:
    env = {"RAG_HOME": str(home), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "ANONYMIZED_TELEMETRY": "False"}
    return subprocess.run([sys.executable, "-m", "rag_app", *args], capture_output=True, text=True, env=env, timeout=600)


def test_cli_ingest_real_embedder_is_idempotent_and_retrievable(tmp_path):
    home = tmp_path / "home"
    first = rag_cli("ingest", str(FIXTURES), "--json", home=home)
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout)
    assert summary["files"]["seen"] == len(EXPECTED)
    assert summary["files"]["added"] == len(EXPECTED) and summary["files"]["failed"] == 0
    assert summary["chunks_written"] > 0 and set(summary) >= {"files", "failed", "chunks_written", "seconds"}

    again = json.loads(rag_cli("ingest", str(FIXTURES), "--json", home=home).stdout)
    assert again["files"]["unchanged"] == len(EXPECTED) and again["chunks_written"] == 0

    from rag_app.api import RAG
    from rag_app.settings import Settings

    rag = RAG(Settings(home=home))
    assert rag.store().count() == summary["chunks_written"]
    records = {rid: meta for rid, meta, _ in rag.store().iter_records()}
    by_source: dict[str, list[dict]] = {}
    for meta in records.values():
        by_source.setdefault(meta["source"], []).append(meta)
    assert set(by_source) == set(EXPECTED)
    for source, expected in EXPECTED.items():
        metas = by_source[source]
        assert metas[0]["title"] == expected["title"], source
        assert metas[0]["kind"] == expected["kind"], source
        if "page" in expected:
            assert any(str(m.get("page")) == expected["page"] for m in metas), source
    # Every chunk fits the embedder's window: nothing is silently truncated.
    embedder = rag.embedder
    documents = rag.store().get(list(records))["documents"]
    metas = rag.store().get(list(records))["metadatas"]
    for text, meta in zip(documents, metas):
        assert embedder.count_tokens(text) <= embedder.max_chunk_tokens
    # Dense retrieval with the real model finds each file by its distinctive fact.
    hits_ok = 0
    for source, expected in EXPECTED.items():
        hits = rag.store().query(embedder.embed_query(expected["question"]), k=3)
        hits_ok += any(h.metadata["source"] == source for h in hits)
    assert hits_ok >= len(EXPECTED) - 1

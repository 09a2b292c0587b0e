"""One write protocol: every writer (ingest, document delete, collection drop) goes through `store.write()`, which
takes the lock, stamps the generation and keeps the BM25 index in step, so lexical search never serves stale text."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag_app.api import RAG
from rag_app.cli import main


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def slow_check(test_settings):
    # Readers re-check the store's stamp only every minute: anything seen sooner was pushed by the write protocol.
    return test_settings.with_overrides(**{"retrieve.lexical_check_s": 60.0})


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "docs"
    write(root / "otters.md", "# Otters\n\nOtters juggle pebbles in the river QX17.\n")
    write(root / "moles.md", "# Moles\n\nMoles dig tunnels under the meadow ZB42.\n")
    return root


def lexical_sources(rag: RAG, query: str) -> list[str]:
    return [h.metadata["source"] for h in rag.retrieve(query, k=5)
            if h.extra.get("lexical_rank") is not None]


def test_a_write_outside_the_protocol_is_refused(rag):
    with pytest.raises(RuntimeError, match="store.write"):
        rag.store().delete(["some-id"])


def test_delete_document_updates_lexical_search_at_once(slow_check, tree):
    rag = RAG(slow_check)
    rag.ingest([tree])
    assert lexical_sources(rag, "QX17") == ["otters.md"]
    otters = next(d for d in rag.documents() if d.source == "otters.md")
    assert rag.delete_document(otters.path) == otters.chunks
    assert lexical_sources(rag, "QX17") == []
    assert [d.source for d in rag.documents()] == ["moles.md"]


def test_another_rag_in_the_process_sees_a_write_at_once(slow_check, tree):
    reader, writer = RAG(slow_check), RAG(slow_check)
    writer.ingest([tree])
    assert lexical_sources(reader, "ZB42") == ["moles.md"]
    moles = next(d for d in writer.documents() if d.source == "moles.md")
    writer.delete_document(moles.path)
    assert lexical_sources(reader, "ZB42") == []  # the saved index replaced CURRENT: noticed without waiting


def test_drop_collection_removes_records_and_index(slow_check, tree):
    rag = RAG(slow_check)
    rag.ingest([tree])
    assert rag.drop_collection() is True
    assert rag.documents() == [] and "default" not in {c.name for c in rag.collections()}
    assert not (slow_check.lexical_dir / "default").exists()
    assert rag.drop_collection() is False
    rag.ingest([tree / "moles.md"])
    assert lexical_sources(rag, "QX17") == [] and lexical_sources(rag, "ZB42") == ["moles.md"]


def test_cli_rebuild_leaves_no_stale_lexical_hits(tree, tmp_path, capsys, monkeypatch):
    """`rag ingest --rebuild` used to drop the collection behind the protocol's back."""
    monkeypatch.setenv("RAG_PROFILE", "test")
    assert main(["ingest", str(tree), "--quiet", "--json"]) == 0
    other = write(tmp_path / "other" / "bees.md", "# Bees\n\nBees dance to point at flowers.\n")
    assert main(["ingest", str(other.parent), "--rebuild", "--quiet", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["files"]["added"] == 1
    rag = RAG()
    assert lexical_sources(rag, "QX17") == [] and lexical_sources(rag, "flowers") == ["bees.md"]

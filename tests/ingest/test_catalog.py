"""The unit catalog: a re-ingest reads it instead of every record, and never trusts it once the store moved on."""

from __future__ import annotations

import pytest

from rag_app.components.store import VectorStore

from tests.fixtures.files import write


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "docs"
    for index in range(6):
        write(root / f"page{index}.md", f"# Page {index}\n\n## Part\n\nGenerative model note number {index}.\n")
    return root


def stored(rag) -> dict[str, dict]:
    return {rid: meta for rid, meta, _ in rag.store().iter_records()}


@pytest.fixture
def record_reads(monkeypatch):
    """Counts reads of stored records' metadata (the cost the catalog saves)."""
    reads = {"iter_records": 0, "get_where": 0}
    for name in reads:
        original = getattr(VectorStore, name)

        def counting(self, *args, _original=original, _name=name, **kwargs):
            reads[_name] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(VectorStore, name, counting)
    return reads


def test_an_unchanged_reingest_reads_the_catalog_not_the_records(rag, tree, record_reads):
    first = rag.ingest([tree])
    assert first.files.added == 6
    record_reads.update(iter_records=0, get_where=0)
    again = rag.ingest([tree], prune=True)  # prune would otherwise read every record's metadata
    assert again.files.unchanged == 6 and again.chunks_written == 0 and again.files.deleted == 0
    assert record_reads == {"iter_records": 0, "get_where": 0}


def test_changes_made_with_the_catalog_match_a_fresh_ingest(rag, tree, test_settings, tmp_path):
    from rag_app.api import RAG

    rag.ingest([tree])
    write(tree / "page1.md", "# Page 1\n\n## Part\n\nRewritten: flows are invertible.\n")
    (tree / "page2.md").unlink()
    write(tree / "new.md", "# New\n\nA new page about diffusion.\n")
    summary = rag.ingest([tree], prune=True)
    assert (summary.files.updated, summary.files.deleted, summary.files.added) == (1, 1, 1)
    assert rag.ingest([tree], prune=True).files.unchanged == 6  # and the catalog written after it is right

    fresh = RAG(test_settings.model_copy(update={"home": tmp_path / "fresh-home"}))
    fresh.ingest([tree])
    assert stored(rag).keys() == stored(fresh).keys()


def test_a_write_by_anyone_else_makes_the_catalog_stale(rag, tree):
    rag.ingest([tree])
    complete = stored(rag)
    store = rag.store()
    victim = next(rid for rid, meta in complete.items() if meta["source"] == "page3.md")
    with store.write():
        store.delete([victim])  # not an ingest: the catalog still says page3 is complete
    summary = rag.ingest([tree])
    assert summary.files.unchanged == 5 and summary.chunks_written == 1  # page3 (its one chunk) is redone
    assert stored(rag).keys() == complete.keys()


def test_a_run_that_fails_half_way_leaves_no_trusted_catalog(test_settings, tree):
    from rag_app.api import RAG
    from rag_app.components.embedder import FakeEmbedder

    class FailingAtSecondBatch(FakeEmbedder):
        batches = None  # counts down while armed

        def _embed_batch(self, texts):
            if FailingAtSecondBatch.batches is not None:
                FailingAtSecondBatch.batches -= 1
                if FailingAtSecondBatch.batches < 0:
                    FailingAtSecondBatch.batches = None
                    raise RuntimeError("embedder died")
            return super()._embed_batch(texts)

    rag = RAG(test_settings, embedder=FailingAtSecondBatch(batch_size=2), **{"ingest.batch_chunks": 2})
    rag.ingest([tree])
    original = {path: path.read_text() for path in tree.glob("*.md")}
    complete = stored(rag)
    for path in original:  # every file changes; the run stores the first two, then dies
        path.write_text(original[path].replace("note number", "changed note"), encoding="utf-8")
    FailingAtSecondBatch.batches = 1
    with pytest.raises(RuntimeError, match="embedder died"):
        rag.ingest([tree])
    assert stored(rag).keys() != complete.keys()
    for path, text in original.items():  # the user reverts the edit: the old catalog would call all of it stored
        path.write_text(text, encoding="utf-8")
    summary = rag.ingest([tree])
    assert summary.chunks_written == 2
    assert stored(rag).keys() == complete.keys()


def test_a_torn_catalog_file_is_ignored(rag, tree, test_settings):
    rag.ingest([tree])
    catalog = test_settings.catalog_dir / "default.json"
    assert catalog.exists()
    catalog.write_text('{"format": 1, "stamp": "', encoding="utf-8")
    complete = stored(rag)
    store = rag.store()
    with store.write():
        store.delete(list(complete)[:1])
    summary = rag.ingest([tree])
    assert summary.chunks_written == 1 and stored(rag).keys() == complete.keys()
    assert rag.ingest([tree]).files.unchanged == 6


def test_rebuilding_the_collection_drops_its_catalog(rag, tree, test_settings):
    rag.ingest([tree])
    catalog = test_settings.catalog_dir / "default.json"
    assert catalog.exists()
    rag.store().drop()
    assert not catalog.exists()

"""Hybrid retrieval through the public API: each retriever finds what the other misses, filters, MMR, reranking,
and the lexical index staying in sync with the store through updates, deletes and crashes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from rag_app.components.embedder import Embedder
from rag_app.errors import RagError

from tests.fixtures.files import write

# Words that mean the same thing embed to the same axis; everything else is invisible to this embedder.
CONCEPTS = {
    "vehicle": {"car", "cars", "automobile", "vehicle", "engine", "wheels"},
    "dog": {"dog", "dogs", "puppy", "canine"},
    "food": {"bread", "bake", "cooking", "oven"},
}


class ConceptEmbedder(Embedder):
    """A handcrafted embedder that knows synonyms but not rare tokens: dense retrieval's strengths and blind spots."""

    name = "concept-test"
    dim = len(CONCEPTS) + 1  # the last axis means "no known concept"
    max_tokens = 256

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def _embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            words = {w.strip(".,:;#!?").lower() for w in text.split()}
            for axis, synonyms in enumerate(CONCEPTS.values()):
                out[row, axis] = len(words & synonyms)
            if not out[row].any():
                out[row, -1] = 1.0
            out[row] /= np.linalg.norm(out[row])
        return out


@pytest.fixture
def corpus(tmp_path) -> Path:
    root = tmp_path / "docs"
    write(root / "cars.md", "# Cars\n\nA car has four wheels and an engine.\n")
    write(root / "parts.md", "# Spares\n\nSpare part XJ9000 fits the engine.\n")
    write(root / "dogs.md", "# Dogs\n\nA puppy is a young dog.\n")
    write(root / "kitchen/bread.md", "# Baking\n\nBake the bread in a hot oven.\n")
    write(root / "misc.md", "# Misc\n\nNothing to see here.\n")
    return root


@pytest.fixture
def concept_rag(test_settings, corpus):
    from rag_app.api import RAG

    settings = test_settings.with_overrides(**{"retrieve.lexical_check_s": 0.0})
    rag = RAG(settings, embedder=ConceptEmbedder())
    rag.ingest([corpus])
    return rag


def sources(hits) -> list[str]:
    return [h.metadata["source"] for h in hits]


def count_reads(store) -> list[list[str]]:
    """The ids of each record read (`store.get`) from now on."""
    reads: list[list[str]] = []
    read_texts = store.get

    def counting_get(ids, include_documents=True):
        reads.append(list(ids))
        return read_texts(ids, include_documents)

    store.get = counting_get
    return reads


def test_hybrid_finds_a_synonym_match_that_lexical_misses(concept_rag):
    # "automobile" occurs in no document: BM25 has nothing; dense maps it onto "car".
    assert concept_rag.retriever().retrieve("automobile", k=3, mode="lexical") == []
    dense = sources(concept_rag.retriever().retrieve("automobile", k=2, mode="dense"))
    hybrid = sources(concept_rag.retrieve("automobile", k=2))
    assert set(dense) == set(hybrid) == {"cars.md", "parts.md"}


def test_hybrid_finds_a_rare_token_that_dense_misses(concept_rag):
    # The part number means nothing to the embedder: dense ranks the concept-free page first.
    retriever = concept_rag.retriever()
    assert sources(retriever.retrieve("XJ9000", k=1, mode="dense")) == ["misc.md"]
    assert sources(retriever.retrieve("XJ9000", k=1, mode="lexical")) == ["parts.md"]
    hits = concept_rag.retrieve("XJ9000", k=1)
    assert sources(hits) == ["parts.md"]
    assert hits[0].extra["lexical_rank"] == 1 and "dense_rank" in hits[0].extra


def test_hybrid_is_the_default_and_scores_are_fused(concept_rag):
    hits = concept_rag.retrieve("puppy", k=5)
    assert concept_rag.settings.retrieve.mode == "hybrid"
    assert sources(hits)[0] == "dogs.md"
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert hits[0].text == "A puppy is a young dog."


def test_lexical_share_is_the_part_of_the_query_a_chunk_matches(concept_rag):
    # A word no document holds still counts in what the query could score: the share falls, the ranking does not.
    retriever = concept_rag.retriever()
    whole = retriever.retrieve("XJ9000 engine", k=1, mode="lexical")[0]
    part = retriever.retrieve("XJ9000 engine zzqx", k=1, mode="lexical")[0]
    assert sources([whole, part]) == ["parts.md", "parts.md"]
    assert 0 < part.extra["lexical_share"] < whole.extra["lexical_share"] < 1
    assert whole.extra["lexical_share"] == pytest.approx(
        whole.extra["lexical_score"] / retriever.lexical.current().query_weight("XJ9000 engine"))
    assert "lexical_share" not in retriever.retrieve("puppy", k=1, mode="dense")[0].extra


@pytest.mark.parametrize("mode", ["dense", "lexical", "hybrid"])
def test_source_glob_filters_every_mode(concept_rag, mode):
    hits = concept_rag.retriever().retrieve("bread engine puppy", k=5, source_glob="kitchen/*", mode=mode)
    assert sources(hits) == ["kitchen/bread.md"]
    assert concept_rag.retriever().retrieve("bread", k=5, source_glob="nowhere/*", mode=mode) == []


def test_lexical_index_follows_updates_and_deletes(concept_rag, corpus):
    retriever = concept_rag.retriever()
    assert sources(retriever.retrieve("XJ9000", k=3, mode="lexical")) == ["parts.md"]

    write(corpus / "parts.md", "# Spares\n\nSpare part ZZ1234 fits the engine.\n")
    concept_rag.ingest([corpus])
    assert retriever.retrieve("XJ9000", k=3, mode="lexical") == []
    assert sources(retriever.retrieve("ZZ1234", k=3, mode="lexical")) == ["parts.md"]

    (corpus / "parts.md").unlink()
    concept_rag.ingest([corpus], prune=True)
    assert retriever.retrieve("ZZ1234", k=3, mode="lexical") == []
    assert retriever.retrieve("ZZ1234", k=3) == [] or "parts.md" not in sources(retriever.retrieve("ZZ1234", k=3))


def test_a_write_by_another_process_is_noticed_by_the_stamp(concept_rag):
    """A write that refreshes no index of ours (another process, in dense mode) changes the generation: the index
    rebuilds."""
    from rag_app.components.store import VectorStore

    retriever = concept_rag.retriever()
    before = retriever.lexical.current()
    store = concept_rag.store()
    other = VectorStore(concept_rag.settings.with_overrides(**{"retrieve.mode": "dense"}), store.embedder_fingerprint,
                        store.name)
    parts_ids = [rid for rid, meta, _ in store.iter_records() if meta["source"] == "parts.md"]
    with other.write():
        other.delete(parts_ids)
    after = retriever.lexical.current()
    assert after is not before and len(after) == len(before) - len(parts_ids)
    assert after.stamp["generation"] == store.generation()
    assert retriever.retrieve("XJ9000", k=3, mode="lexical") == []


def test_texts_read_once_are_reused_until_the_collection_changes(concept_rag, corpus):
    from rag_app.components.store import VectorStore

    retriever = concept_rag.retriever()
    store = concept_rag.store()
    reads = count_reads(store)
    retriever.lexical.current().main.records = None  # as a main segment from before they kept records
    first = retriever.retrieve("XJ9000 engine", k=3)
    assert "parts.md" in sources(first) and reads
    reads.clear()
    again = retriever.retrieve("XJ9000 engine", k=3)
    assert reads == []  # the texts came from the cache
    assert [(h.id, h.text, h.metadata, h.score) for h in again] == [(h.id, h.text, h.metadata, h.score) for h in first]

    # Another process changes a cached chunk in place (same id): the moved stamp empties the cache.
    other = VectorStore(concept_rag.settings.with_overrides(**{"retrieve.mode": "dense"}), store.embedder_fingerprint,
                        store.name)
    (parts_id, parts_meta, _), = [r for r in store.iter_records() if r[1]["source"] == "parts.md"]
    with other.write():
        other.update_metadata([parts_id], [{**parts_meta, "title": "Renamed spares"}])
    renamed = [h for h in retriever.retrieve("XJ9000 engine", k=3) if h.id == parts_id]
    assert renamed and renamed[0].metadata["title"] == "Renamed spares"

    # A write through this process changes a text: the new one is served.
    write(corpus / "cars.md", "# Cars\n\nA car has four wheels and an electric motor.\n")
    concept_rag.ingest([corpus])
    texts = [h.text for h in retriever.retrieve("car wheels", k=3)]
    assert any("electric motor" in t for t in texts) and not any("an engine." in t for t in texts)


def test_texts_are_read_for_the_hits_returned_and_deleted_ones_are_stood_in_for(concept_rag):
    """Only the first k candidates' records are read; a candidate deleted since the lexical index looked is replaced
    by the next one, so the hits equal those of reading every candidate."""
    retriever = concept_rag.retriever()
    store = concept_rag.store()
    ids = sorted(rid for rid, _, _ in store.iter_records())
    reads = count_reads(store)
    ranked = [(rid, 1.0 - n / 10) for n, rid in enumerate(ids)]
    assert [h.id for h in retriever._hydrate(ranked, {}, None, need=2)] == ids[:2] and reads == [ids[:2]]

    gone = ["deleted-a", "deleted-b"]
    ranked = [(gone[0], 0.9), (ids[0], 0.8), (gone[1], 0.7), (ids[1], 0.6), (ids[2], 0.5), (ids[3], 0.4)]
    reads.clear()
    hits = retriever._hydrate(ranked, {}, None, need=2)
    assert [h.id for h in hits] == ids[:2] and reads == [[gone[0], ids[0]], [gone[1]], [ids[1]]]
    assert [(h.id, h.score) for h in hits] == [(h.id, h.score) for h in retriever._hydrate(ranked, {}, None)][:2]

    # End to end: a chunk deleted by another process while this index is not due a check is skipped, k still met.
    from rag_app.components.store import VectorStore

    settings = concept_rag.settings.with_overrides(**{"retrieve.lexical_check_s": 3600.0,
                                                      "retrieve.record_cache_size": 0})
    slow = type(retriever)(settings, retriever.embedder, store)
    first = slow.retrieve("engine wheels spare part puppy bread", k=2, mode="lexical")
    slow.lexical.current().main.records = None  # texts from the store (a segment from before it kept records)
    other = VectorStore(settings.with_overrides(**{"retrieve.mode": "dense"}), store.embedder_fingerprint, store.name)
    with other.write():
        other.delete([first[0].id])
    after = slow.retrieve("engine wheels spare part puppy bread", k=2, mode="lexical")
    assert slow.lexical.current().stamp["generation"] != store.generation()  # the index has not looked yet
    assert first[0].id not in [h.id for h in after] and after[0].id == first[1].id and len(after) == 2


def test_hit_texts_come_from_the_lexical_index_at_its_stamp(concept_rag, corpus):
    """The main segment keeps each chunk's text and metadata: hits equal those read from the store, without reading
    it, and follow every write (another process's, this process's, deletes) as the index does."""
    from rag_app.components.store import VectorStore

    settings = concept_rag.settings.with_overrides(**{"retrieve.record_cache_size": 0})
    store = concept_rag.store()
    retriever = type(concept_rag.retriever())(settings, concept_rag.retriever().embedder, store)
    reads = count_reads(store)

    def seen(hits):
        return [(h.id, h.text, h.metadata, h.score, h.extra) for h in hits]

    queries = ["XJ9000 engine", "puppy", "bread oven", "automobile wheels"]
    kept = [seen(retriever.retrieve(q, k=3)) for q in queries]
    assert reads == [] and all(kept)
    index = retriever.lexical.current()
    records, index.main.records = index.main.records, None
    assert [seen(retriever.retrieve(q, k=3)) for q in queries] == kept and reads  # the same, read from the store
    index.main.records = records

    # Another process renames a chunk in place (same id) and deletes another: the moved stamp rebuilds the index.
    other = VectorStore(settings.with_overrides(**{"retrieve.mode": "dense"}), store.embedder_fingerprint, store.name)
    (parts_id, parts_meta, _), = [r for r in store.iter_records() if r[1]["source"] == "parts.md"]
    dogs_ids = [rid for rid, meta, _ in store.iter_records() if meta["source"] == "dogs.md"]
    with other.write():
        other.update_metadata([parts_id], [{**parts_meta, "title": "Renamed spares"}])
        other.delete(dogs_ids)
    renamed = [h for h in retriever.retrieve("XJ9000 engine", k=3) if h.id == parts_id]
    assert renamed and renamed[0].metadata["title"] == "Renamed spares"
    assert "dogs.md" not in sources(retriever.retrieve("puppy dog", k=5))

    # This process changes a text (a delta segment: its chunk is read from the store).
    write(corpus / "cars.md", "# Cars\n\nA car has four wheels and an electric motor.\n")
    concept_rag.ingest([corpus])
    texts = [h.text for h in retriever.retrieve("car wheels", k=3)]
    assert any("electric motor" in t for t in texts) and not any("an engine." in t for t in texts)


def _manifest(folder):
    import json

    return json.loads((folder / (folder / "CURRENT").read_text().strip()).read_text())


def test_stale_or_broken_index_on_disk_is_rebuilt(concept_rag, test_settings):
    from rag_app.components.lexical import DerivedLexicalIndex

    folder = test_settings.lexical_dir / concept_rag.store().name
    assert (folder / _manifest(folder)["main"] / "stamp.json").exists()
    # A crash mid-build leaves a temp folder; a crash mid-cleanup a pointer to nothing.
    (folder / "tmp-crashed").mkdir()
    (folder / "CURRENT").write_text("manifest-gone.json")
    fresh = DerivedLexicalIndex(test_settings.lexical_dir, concept_rag.store(), check_s=0.0)
    index = fresh.current()
    assert fresh.counters["full_builds"] == 1
    assert index.search("XJ9000", 1)[0][0] in {rid for rid, _, _ in concept_rag.store().iter_records()}
    assert not (folder / "tmp-crashed").exists()
    assert (folder / _manifest(folder)["main"] / "stamp.json").exists()


def test_ingest_hook_writes_the_index_with_the_store_stamp(concept_rag, test_settings):
    folder = test_settings.lexical_dir / concept_rag.store().name
    manifest = _manifest(folder)
    assert manifest["generation"] == concept_rag.store().generation()
    assert manifest["count"] == concept_rag.store().count()


def test_mmr_returns_distinct_hits(test_settings, corpus):
    from rag_app.api import RAG

    rag = RAG(test_settings.with_overrides(**{"retrieve.mmr": True}), embedder=ConceptEmbedder())
    rag.ingest([corpus])
    hits = rag.retrieve("car engine dog bread", k=3)
    assert len(hits) == 3 and len({h.id for h in hits}) == 3
    # Diversity: the two near-identical vehicle pages do not both take the first two places.
    assert len({h.metadata["source"] for h in hits[:2]} & {"cars.md", "parts.md"}) <= 1


def test_reranker_reorders_candidates(concept_rag):
    from rag_app.services.retrieve import Retriever

    class ReverseAlphabetical:
        def rerank(self, query, hits):
            return sorted(hits, key=lambda h: h.metadata["source"], reverse=True)

    settings = concept_rag.settings.with_overrides(**{"retrieve.rerank_k": 2})
    retriever = Retriever(settings, concept_rag.embedder, concept_rag.store(), reranker=ReverseAlphabetical())
    # Only the top rerank_k fused candidates are rescored; the rest keep their order behind them.
    assert sorted(sources(retriever.retrieve("engine", k=2, mode="hybrid"))) == ["cars.md", "parts.md"]
    assert sources(retriever.retrieve("engine", k=2)) == ["parts.md", "cars.md"]


def test_missing_cross_encoder_path_is_a_clear_error(concept_rag, tmp_path):
    from rag_app.services.retrieve import Retriever

    settings = concept_rag.settings.with_overrides(**{"retrieve.rerank_model": str(tmp_path / "no-such-model")})
    retriever = Retriever(settings, concept_rag.embedder, concept_rag.store())
    with pytest.raises(RagError, match="no-such-model"):
        retriever.retrieve("engine")


def test_fake_profile_works_end_to_end(rag, corpus):
    """The default test profile (hashing fake embedder) retrieves with hybrid search too."""
    rag.ingest([corpus])
    assert sources(rag.retrieve("Spare part XJ9000", k=1)) == ["parts.md"]


def test_zscore_fusion_by_hand():
    from rag_app.services.retrieve import fuse_scores

    # dense scores 0.9, 0.5, 0.1 → mean 0.5, std 0.3266 → z = 1.2247, 0, -1.2247 (absent: the lowest, -1.2247).
    # lexical scores 4, 2 for b, d → mean 3, std 1 → z = 1, -1 (absent: -1).
    fused = dict(fuse_scores([("a", 0.9), ("b", 0.5), ("c", 0.1)], [("b", 4.0), ("d", 2.0)], "zscore", 0.5, depth=2))
    assert fused["a"] == pytest.approx(0.5 * 1.224745 + 0.5 * -1)
    assert fused["b"] == pytest.approx(0.5 * 0 + 0.5 * 1)
    assert fused["d"] == pytest.approx(0.5 * -1.224745 + 0.5 * -1)
    assert list(fused) == ["b", "a", "c", "d"]
    # A lexical list shorter than the depth is padded with zeros: b = 4 among [4, 0, 0, 0] → z = 1.7321.
    padded = dict(fuse_scores([("a", 0.9), ("b", 0.5)], [("b", 4.0)], "zscore", 0.0, depth=4))
    assert padded["b"] == pytest.approx(1.732051) and padded["a"] == pytest.approx(-0.577350)


def test_rrf_fusion_by_hand():
    from rag_app.services.retrieve import fuse_scores

    fused = dict(fuse_scores([("a", 0.9), ("b", 0.5)], [("b", 4.0), ("c", 2.0)], "rrf", 0.5, rrf_k=60))
    assert fused["b"] == pytest.approx(0.5 / 62 + 0.5 / 61)
    assert fused["a"] == pytest.approx(0.5 / 61)
    assert fused["c"] == pytest.approx(0.5 / 62)

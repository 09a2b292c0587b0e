"""The BM25 index: the main segment scores exactly as bm25s' Lucene BM25 (the reference the eval figures were taken
with), and main + delta ranks as a full rebuild of the same chunks does."""

from __future__ import annotations

import random

import numpy as np
import pytest

from rag_app.components.lexical import Delta, LexicalConfig, LexicalIndex, MainSegment, indexed_text, tokenize

WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma tau".split()
CONFIG = LexicalConfig()


def records(n: int, prefix: str, seed: int):
    rng = random.Random(seed)
    return [(f"{prefix}{i}", {"source": f"{prefix}{i % 7}.md", "title": rng.choice(WORDS)},
             " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 40)))) for i in range(n)]


def as_put(rows):
    return [[rid, meta["source"], tokenize(indexed_text(meta, text, CONFIG.title_weight), CONFIG)]
            for rid, meta, text in rows]


def test_main_segment_scores_equal_bm25s_lucene():
    import bm25s

    rows = records(400, "d", seed=1)
    index = LexicalIndex(MainSegment.build(rows, CONFIG, {}), Delta(), {})
    reference = bm25s.BM25(k1=CONFIG.k1, b=CONFIG.b, method="lucene")
    reference.index([tokenize(indexed_text(m, t, CONFIG.title_weight), CONFIG) for _, m, t in rows],
                    show_progress=False)
    for query in ("alpha beta", "sigma tau tau", "pi", "nothing here"):
        np.testing.assert_allclose(index.scores(query), reference.get_scores(tokenize(query, CONFIG)), atol=1e-5)


def test_main_plus_delta_ranks_as_a_full_rebuild():
    rows, added = records(500, "d", seed=2), records(25, "n", seed=3)
    main = MainSegment.build(rows, CONFIG, {})
    delta = Delta()
    delta.apply({"put": as_put(added), "remove": ["d3", "d4"]}, main)  # one write run: tombstones + new chunks
    delta.apply({"put": [], "remove": ["n0"]}, main)  # the next: deletes a delta chunk
    index = LexicalIndex(main, delta, {})
    kept = [r for r in rows if r[0] not in ("d3", "d4")] + added[1:]
    full = LexicalIndex(MainSegment.build(kept, CONFIG, {}), Delta(), {})
    assert sorted(index.ids) == sorted(full.ids) and len(index) == len(full) == 522
    for query in ("alpha beta", "omicron", "tau rho pi"):
        ours, theirs = dict(index.search(query, 20)), dict(full.search(query, 20))
        assert len(ours.keys() & theirs.keys()) >= 18  # same top 20 but for ties at the cut
        for rid in ours.keys() & theirs.keys():
            assert abs(ours[rid] - theirs[rid]) <= 0.05 * theirs[rid]  # only avgdl and tombstoned df differ
    assert not {"d3", "d4", "n0"} & set(index.ids)
    assert index.source_mask("n*.md").sum() == 24 and "d3.md" in index.matching_sources("d*.md")


def test_chunks_put_again_count_once_in_the_term_statistics():
    # Re-ingesting puts the same chunks into the delta and tombstones their main rows: a term's document frequency
    # must count them once, or its IDF turns negative and the chunks score nothing.
    rows = [(f"c{i}", {"source": f"c{i}.md"}, "engine motor part") for i in range(30)]
    rows.append(("b", {"source": "b.md"}, "bread"))
    main = MainSegment.build(rows, CONFIG, {})
    delta = Delta()
    delta.apply({"put": as_put(rows[:30]), "remove": []}, main)
    index = LexicalIndex(main, delta, {})
    full = LexicalIndex(MainSegment.build(rows, CONFIG, {}), Delta(), {})
    assert len(index) == len(full) == 31
    assert len(index.search("engine motor", 40)) == 30
    assert index.query_weight("engine motor bread") == pytest.approx(full.query_weight("engine motor bread"))
    best = max(score for _, score in index.search("engine motor bread", 40))
    assert 0 < best / index.query_weight("engine motor bread") < 1


@pytest.mark.parametrize("spooled", [True, False])
def test_the_main_segment_keeps_each_chunks_text_and_metadata(tmp_path, spooled):
    rows = [(rid, {**meta, "page": i, "score": i / 3, "ocr": i % 2 == 0, "title": "Ünïcode ✓"}, text)
            for i, (rid, meta, text) in enumerate(records(60, "d", seed=4))]
    folder = tmp_path / "main"
    folder.mkdir()
    main = MainSegment.build(rows, CONFIG, {}, spool=folder / "records.bin" if spooled else None)
    main.save_into(folder)
    for mmap in (True, False):
        loaded = MainSegment.load_from(folder, mmap=mmap)
        delta = Delta()
        delta.apply({"put": as_put(records(2, "n", seed=5)) + as_put(rows[5:6]), "remove": ["d3"]}, loaded)
        index = LexicalIndex(loaded, delta, {})
        wanted = [rid for rid, _, _ in rows] + ["n0", "nowhere"]
        kept = index.records(wanted)
        # Live main chunks only: a tombstone (d3) or a chunk re-put into the delta (d5) is read from the store.
        assert kept == {rid: (text, meta) for rid, meta, text in rows if rid not in ("d3", "d5")}
        assert index.search("alpha", 5) == LexicalIndex(main, delta, {}).search("alpha", 5)
    # Metadata JSON cannot hold as it is (a server's sparse vector, say) is not kept: that chunk is read from the store.
    odd = MainSegment.build([("a", {"source": "a.md", "vector": object()}, "alpha"), rows[0]], CONFIG, {})
    assert LexicalIndex(odd, Delta(), {}).records(["a", "d0"]) == {"d0": (rows[0][2], rows[0][1])}
    # A segment written before segments kept records has none: every text is read from the store.
    (folder / "records.bin").unlink()
    (folder / "record_offsets.npy").unlink()
    old = MainSegment.load_from(folder, mmap=True)
    assert old.records is None and LexicalIndex(old, Delta(), {}).records(["d1"]) == {}


def test_a_saved_segment_loads_without_parsing_python(tmp_path, monkeypatch):
    """CPython 3.11's ast module is not thread-safe (gh-106905): the index is loaded in background threads while
    Streamlit parses its pages, so loading must not call `ast.parse` (as `np.load` does for each header)."""
    import ast

    from rag_app.components.lexical.arrays import load_array

    rows = records(40, "d", seed=6)
    folder = tmp_path / "main"
    folder.mkdir()
    main = MainSegment.build(rows, CONFIG, {}, spool=None)
    main.save_into(folder)
    arrays = {"empty": np.zeros(0, np.float32), "grid": np.arange(6, dtype=">i8").reshape(2, 3),
              "words": np.array(["ab", "ü"])}
    for name, array_ in arrays.items():
        np.save(tmp_path / f"{name}.npy", array_)
    np.save(tmp_path / "columns.npy", np.asfortranarray(np.ones((2, 2))))  # a header of another shape: np.load reads it

    def no_parsing(*args, **kwargs):
        raise AssertionError("ast.parse called")

    with monkeypatch.context() as patch:  # (undone before pytest reports, which parses the test's source)
        patch.setattr(ast, "parse", no_parsing)
        loaded = [MainSegment.load_from(folder, mmap=mmap) for mmap in (True, False)]
        read = [{name: load_array(tmp_path / f"{name}.npy", mmap=mmap) for name in arrays} for mmap in (True, False)]
    for segment in loaded:
        assert LexicalIndex(segment, Delta(), {}).search("alpha beta", 5) == LexicalIndex(main, Delta(), {}).search(
            "alpha beta", 5)
    for arrays_read in read:
        for name, array_ in arrays.items():
            assert arrays_read[name].dtype == array_.dtype and np.array_equal(arrays_read[name], array_)
    assert np.array_equal(load_array(tmp_path / "columns.npy"), np.ones((2, 2)))

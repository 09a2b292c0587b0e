"""One write protocol: every writer (ingest, document delete, collection drop) goes through `store.write()`, which
takes the lock, stamps the generation and keeps the BM25 index in step, so lexical search never serves stale text."""

from __future__ import annotations

import json
import time

import pytest

from rag_app.api import RAG
from rag_app.cli import main
from tests.fixtures.files import write


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


# -- the lexical delta: writes are appended, not rebuilt ---------------------------------------------------------------
def lexical_of(rag: RAG):
    return rag.retriever().lexical


def test_an_added_document_is_found_without_a_full_rebuild(slow_check, tree, tmp_path):
    rag = RAG(slow_check)
    rag.ingest([tree])
    lexical = lexical_of(rag)
    builds = lexical.counters["full_builds"]
    bees = write(tmp_path / "more" / "bees.md", "# Bees\n\nBees dance for the hive KW88.\n")
    rag.ingest([bees])
    assert lexical_sources(rag, "KW88") == ["bees.md"]
    assert rag.retrieve("KW88", k=1)[0].metadata["source"] == "bees.md"  # hybrid, the default
    assert [h.metadata["source"] for h in rag.retriever().retrieve("KW88", k=2, mode="lexical")] == ["bees.md"]
    assert lexical.counters["full_builds"] == builds and lexical.counters["delta_writes"] == 1
    assert lexical.current().stats["delta"] == 1
    # A reader that loads the index from disk sees main + delta, and builds nothing itself.
    reader = RAG(slow_check)
    assert lexical_sources(reader, "KW88") == ["bees.md"] and lexical_sources(reader, "QX17") == ["otters.md"]
    assert lexical_of(reader).counters["full_builds"] == 0
    assert set(lexical_of(reader).current().ids) == {rid for rid, _, _ in rag.store().iter_records()}


def test_deleted_and_replaced_chunks_never_resurface(slow_check, tree, tmp_path):
    rag = RAG(slow_check)
    rag.ingest([tree])
    builds = lexical_of(rag).counters["full_builds"]
    otters = next(d for d in rag.documents() if d.source == "otters.md")
    rag.delete_document(otters.path)  # a tombstone in the main segment
    write(tree / "moles.md", "# Moles\n\nMoles now farm worms PL55.\n")
    rag.ingest([tree / "moles.md"])  # the old chunk replaced: another tombstone, the new one in the delta
    rag.ingest([write(tmp_path / "more" / "bees.md", "# Bees\n\nBees dance for the hive KW88.\n")])
    assert lexical_of(rag).counters["full_builds"] == builds
    for reader in (rag, RAG(slow_check)):
        assert lexical_sources(reader, "QX17") == [] and lexical_sources(reader, "ZB42") == []
        assert lexical_sources(reader, "PL55") == ["moles.md"] and lexical_sources(reader, "KW88") == ["bees.md"]
        assert set(lexical_of(reader).current().ids) == {rid for rid, _, _ in rag.store().iter_records()}


def test_a_delta_past_its_bound_is_merged_inline_when_asked(test_settings, tree, tmp_path):
    settings = test_settings.with_overrides(**{"retrieve.lexical_check_s": 60.0, "retrieve.lexical_delta_min": 2,
                                               "retrieve.lexical_delta_fraction": 0.0,
                                               "retrieve.lexical_merge": "inline"})
    rag = RAG(settings)
    rag.ingest([tree])
    lexical = lexical_of(rag)
    otters = next(d for d in rag.documents() if d.source == "otters.md")
    rag.delete_document(otters.path)  # delta: 1 of at most 2
    assert lexical.counters == {**lexical.counters, "full_builds": 1, "delta_writes": 1}
    rag.ingest([write(tmp_path / "more" / "bees.md", "# Bees\n\nBees dance for the hive KW88.\n")])  # delta: 2
    rag.ingest([write(tmp_path / "more" / "ants.md", "# Ants\n\nAnts carry leaves JT31.\n")])  # 3 > 2: merged
    assert lexical.counters["full_builds"] == 2 and lexical.counters["delta_writes"] == 2
    assert lexical.current().stats == {"main": 3, "delta": 0, "removed": 0, "segments": 0}
    folder = settings.lexical_dir / rag.store().name
    assert sorted(p.name.split("-")[0] for p in folder.iterdir()) == ["CURRENT", "build.lock", "main", "manifest"]
    for reader in (rag, RAG(settings)):
        assert lexical_sources(reader, "QX17") == [] and lexical_sources(reader, "JT31") == ["ants.md"]
        assert lexical_sources(reader, "KW88") == ["bees.md"]


def test_a_delta_past_its_bound_is_merged_by_a_background_process(test_settings, tree, tmp_path):
    settings = test_settings.with_overrides(**{"retrieve.lexical_check_s": 0.0, "retrieve.lexical_delta_min": 2,
                                               "retrieve.lexical_delta_fraction": 0.0})
    rag = RAG(settings)
    rag.ingest([tree])
    lexical = lexical_of(rag)
    otters = next(d for d in rag.documents() if d.source == "otters.md")
    rag.delete_document(otters.path)  # delta: 1 of at most 2
    rag.ingest([write(tmp_path / "more" / "bees.md", "# Bees\n\nBees dance for the hive KW88.\n")])  # delta: 2
    rag.ingest([write(tmp_path / "more" / "ants.md", "# Ants\n\nAnts carry leaves JT31.\n")])  # 3 > 2
    # The write that crossed the bound appended its delta like the others and left the merge to another process.
    assert lexical.counters == {**lexical.counters, "full_builds": 1, "delta_writes": 3, "merges_started": 1}
    assert lexical_sources(rag, "JT31") == ["ants.md"]
    assert lexical.start_merge.wait(timeout_s=120) == 0
    # Queries go on with the index they have while a thread loads the merged one.
    deadline = time.monotonic() + 30
    while lexical.current().stats["delta"] and time.monotonic() < deadline:
        time.sleep(0.05)
    index = lexical.current()
    assert index.stats == {"main": 3, "delta": 0, "removed": 0, "segments": 0}
    assert lexical.counters["full_builds"] == 1  # this process built nothing more
    assert set(index.ids) == {rid for rid, _, _ in rag.store().iter_records()}
    assert lexical_sources(rag, "QX17") == [] and lexical_sources(rag, "KW88") == ["bees.md"]
    log = (settings.lexical_dir / rag.store().name / "merge.log").read_text()
    assert json.loads(log.strip().splitlines()[-1])["merged"] is True
    folder = settings.lexical_dir / rag.store().name
    assert not [p for p in folder.iterdir() if p.name.startswith(("seg-", "merging-", "tmp-"))]


def test_an_index_from_before_records_were_kept_is_rebuilt_with_them_in_the_background(test_settings, tree):
    settings = test_settings.with_overrides(**{"retrieve.lexical_check_s": 0.0})
    rag = RAG(settings)
    rag.ingest([tree])
    folder = settings.lexical_dir / rag.store().name
    main = next(p for p in folder.iterdir() if p.name.startswith("main-"))
    for name in ("record_offsets.npy", "records.bin"):  # as an older version wrote it
        (main / name).unlink()
    reader = RAG(settings)
    lexical = lexical_of(reader)
    assert lexical_sources(reader, "QX17") == ["otters.md"]  # served at once, the texts read from the store
    assert lexical.current().main.records is None and lexical.counters["merges_started"] == 1
    assert lexical.start_merge.wait(timeout_s=120) == 0
    deadline = time.monotonic() + 30
    while lexical.current().main.records is None and time.monotonic() < deadline:
        time.sleep(0.05)
    index = lexical.current()
    assert index.main.records is not None and lexical.counters["merges_started"] == 1  # once
    assert set(index.ids) == {rid for rid, _, _ in rag.store().iter_records()}
    assert lexical_sources(reader, "QX17") == ["otters.md"] and lexical_sources(RAG(settings), "QX17") == ["otters.md"]


def test_writes_during_a_merge_are_carried_onto_the_merged_index(test_settings, tree, tmp_path):
    """The merge reads the store without the build lock: a write that lands while it reads appends its delta
    segment, and the merge publishes its main segment with that segment on top."""
    from rag_app.components.lexical_upkeep import lexical_index

    settings = test_settings.with_overrides(**{"retrieve.lexical_check_s": 0.0, "retrieve.lexical_merge": "inline"})
    rag = RAG(settings)
    rag.ingest([tree])
    store = rag.store()

    class WriteWhileRead:  # the store, with one ingest landing after the merge has read its first record
        name = store.name

        def __getattr__(self, attr):
            return getattr(store, attr)

        def iter_records(self, *args, **kwargs):
            for number, record in enumerate(store.iter_records(*args, **kwargs)):
                if number == 1:
                    rag.ingest([write(tmp_path / "more" / "bees.md", "# Bees\n\nBees dance for the hive KW88.\n")])
                yield record

    merger = lexical_index(settings, WriteWhileRead())
    assert merger.merge()
    index = lexical_of(rag).current()
    assert index.stats["segments"] == 1 and index.stats["delta"] >= 1  # the ingest's segment, carried over
    assert set(index.ids) == {rid for rid, _, _ in store.iter_records()}
    assert lexical_sources(rag, "KW88") == ["bees.md"] and lexical_sources(rag, "QX17") == ["otters.md"]


def test_a_write_the_index_missed_is_not_appended_onto_a_stale_index(slow_check, tree, tmp_path):
    """A dense-mode writer refreshes no lexical index: the next hybrid write must rebuild, not append onto it."""
    rag = RAG(slow_check)
    rag.ingest([tree])
    dense = RAG(slow_check.with_overrides(**{"retrieve.mode": "dense"}))
    otters = next(d for d in dense.documents() if d.source == "otters.md")
    dense.delete_document(otters.path)
    before = lexical_of(rag).counters["full_builds"]
    rag.ingest([write(tmp_path / "more" / "bees.md", "# Bees\n\nBees dance for the hive KW88.\n")])
    assert lexical_of(rag).counters["full_builds"] == before + 1
    assert lexical_sources(rag, "QX17") == [] and lexical_sources(rag, "KW88") == ["bees.md"]

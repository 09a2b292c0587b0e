"""The ingest service through the public API, with the fake embedder: ids, idempotence, updates, prune, failures."""

from __future__ import annotations

import json

import pytest

from rag_app.errors import IngestStoppedError
from tests.fixtures.files import write


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "docs"
    write(root / "vae.md", "# Variational autoencoders\n\n## The ELBO\n\nThe ELBO is reconstruction minus KL.\n\n"
          "## Reparameterisation\n\nSample epsilon from a standard normal and shift it by the mean.\n")
    write(root / "notes.txt", "Diffusion models add Gaussian noise step by step and learn to remove it.\n")
    write(root / "sub" / "gan.md", "# GANs\n\nA generator and a discriminator play a minimax game.\n")
    return root


def stored(rag):
    store = rag.store()
    return {rid: meta for rid, meta, _ in store.iter_records()}


def test_first_ingest_counts_and_metadata(rag, tree):
    summary = rag.ingest([tree])
    assert summary.files.seen == 3 and summary.files.added == 3 and summary.files.failed == 0
    records = stored(rag)
    assert summary.chunks_written == len(records) > 0
    sources = {meta["source"] for meta in records.values()}
    assert sources == {"vae.md", "notes.txt", "sub/gan.md"}
    elbo = [m for m in records.values() if m.get("section", "").endswith("The ELBO")]
    assert elbo and elbo[0]["title"] == "Variational autoencoders"
    for meta in records.values():
        for key in ("path", "source", "doc_id", "title", "file_hash", "content_hash", "ingested_at", "n_chunks"):
            assert key in meta, key


def test_reingest_unchanged_writes_nothing(rag, tree):
    first = rag.ingest([tree])
    before = stored(rag)
    again = rag.ingest([tree])
    assert again.files.unchanged == 3 and again.chunks_written == 0 and again.files.added == 0
    assert stored(rag).keys() == before.keys()
    assert first.chunks_written == len(before)


def test_ids_derive_from_content(test_settings, tree, tmp_path):
    from rag_app.api import RAG

    one = RAG(test_settings, **{"store.collection": "one"})
    two = RAG(test_settings, **{"store.collection": "two"})
    one.ingest([tree])
    two.ingest([tree])
    assert stored(one).keys() == stored(two).keys()


def test_changed_file_replaces_its_chunks(rag, tree):
    rag.ingest([tree])
    old_ids = {rid for rid, m in stored(rag).items() if m["source"] == "notes.txt"}
    write(tree / "notes.txt", "Flows are invertible and give exact likelihoods.\n")
    summary = rag.ingest([tree])
    assert summary.files.updated == 1 and summary.files.unchanged == 2
    records = stored(rag)
    notes = {rid: m for rid, m in records.items() if m["source"] == "notes.txt"}
    assert notes and not (notes.keys() & old_ids)
    texts = rag.store().get(list(notes))["documents"]
    assert any("invertible" in t for t in texts) and not any("Gaussian noise" in t for t in texts)


def test_prune_removes_deleted_files_only_with_flag(rag, tree):
    rag.ingest([tree])
    (tree / "sub" / "gan.md").unlink()
    kept = rag.ingest([tree])
    assert kept.files.deleted == 0
    assert any(m["source"] == "sub/gan.md" for m in stored(rag).values())
    pruned = rag.ingest([tree], prune=True)
    assert pruned.files.deleted == 1
    assert not any(m["source"] == "sub/gan.md" for m in stored(rag).values())


def test_bad_files_are_reported_and_the_rest_goes_on(rag, tree):
    (tree / "empty.txt").write_bytes(b"")
    (tree / "binary.txt").write_bytes(b"\x00\x01\x02binary\x00" * 100)
    (tree / "image.xyz").write_bytes(b"whatever")
    summary = rag.ingest([tree])
    failed = {f["path"]: f["error"] for f in summary.failed}
    assert set(failed) == {"empty.txt", "binary.txt"}
    assert all(reason for reason in failed.values())
    assert summary.files.added == 3
    assert [s["path"] for s in summary.skipped] == ["image.xyz"]


def test_failed_file_keeps_its_previous_chunks(rag, tree):
    rag.ingest([tree])
    before = {rid for rid, m in stored(rag).items() if m["source"] == "notes.txt"}
    (tree / "notes.txt").write_bytes(b"\x00\x00 now binary \x00")
    summary = rag.ingest([tree], prune=True)
    assert [f["path"] for f in summary.failed] == ["notes.txt"]
    after = {rid for rid, m in stored(rag).items() if m["source"] == "notes.txt"}
    assert after == before


def test_interrupted_state_converges(rag, tree):
    """Simulate a crash after a partial write: missing chunks and stale ones are both repaired."""
    rag.ingest([tree])
    complete = stored(rag)
    store = rag.store()
    victims = [rid for rid, m in complete.items() if m["source"] == "vae.md"]
    with store.write():
        store.delete(victims[:1])  # a chunk lost mid-write
    summary = rag.ingest([tree])
    assert summary.chunks_written == 1 and summary.files.updated == 1
    assert stored(rag).keys() == complete.keys()


def test_oversized_file_fails_with_reason(test_settings, tree):
    from rag_app.api import RAG

    rag = RAG(test_settings.with_overrides(**{"ingest.max_file_mb": 0.0001}))
    write(tree / "big.txt", "word " * 1000)
    summary = rag.ingest([tree])
    assert any(f["path"] == "big.txt" and "limit" in f["error"] for f in summary.failed)


def test_embedder_mismatch_is_refused(test_settings, tree):
    from rag_app.api import RAG
    from rag_app.components.embedder import FakeEmbedder
    from rag_app.errors import EmbedderMismatchError

    RAG(test_settings).ingest([tree])
    other = RAG(test_settings, embedder=FakeEmbedder(dim=32))
    with pytest.raises(EmbedderMismatchError) as info:
        other.ingest([tree])
    assert "fake-hash-64" in str(info.value) and "fake-hash-32" in str(info.value) and "--rebuild" in str(info.value)


def test_beir_jsonl_keeps_record_ids(rag, tmp_path):
    corpus = tmp_path / "beir" / "corpus.jsonl"
    corpus.parent.mkdir()
    rows = [{"_id": "d1", "title": "Alpha", "text": "Alpha particles are helium nuclei."},
            {"_id": "d2", "title": "Beta", "text": "Beta decay emits an electron."}]
    corpus.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    rag.ingest([corpus.parent])
    assert {m["doc_id"] for m in stored(rag).values()} == {"d1", "d2"}


def test_changing_the_chunking_rechunks_and_then_stays_unchanged(test_settings, tmp_path):
    """Bug: a re-ingest with other chunk sizes said "1 unchanged, 0 written" and kept the old chunks."""
    from rag_app.api import RAG

    root = tmp_path / "long"
    sentences = " ".join(f"Sentence {i} talks about noise schedules and samplers in diffusion models." for i in range(60))
    write(root / "long.md", f"# Long\n\n{sentences}\n")
    big = RAG(test_settings, **{"chunk.chunk_tokens": 200})
    first = big.ingest([root])
    before = stored(big)
    assert first.chunks_written == len(before) > 1

    small = RAG(test_settings, **{"chunk.chunk_tokens": 60, "chunk.overlap_tokens": 8})
    again = small.ingest([root])
    after = stored(small)
    assert again.files.updated == 1 and again.files.unchanged == 0
    assert again.chunks_written > 0 and len(after) > len(before)
    assert {m["chunking"] for m in after.values()} == {after[next(iter(after))]["chunking"]}
    assert all(m["n_chunks"] == len(after) and m["n_tokens"] <= 60 for m in after.values())
    assert again.chunks_deleted == len(set(before) - set(after))

    steady = small.ingest([root])
    assert steady.files.unchanged == 1 and steady.chunks_written == 0 and stored(small).keys() == after.keys()


def test_an_unchanged_reingest_never_loads_the_embedder(test_settings, tree):
    """Only chunking needs the model's window: a re-ingest with nothing to chunk must not load the model."""
    from rag_app.api import RAG
    from rag_app.components.embedder import FakeEmbedder

    class CountingEmbedder(FakeEmbedder):
        loads = 0

        @property
        def max_chunk_tokens(self) -> int:
            CountingEmbedder.loads += 1
            return super().max_chunk_tokens

    rag = RAG(test_settings, embedder=CountingEmbedder())
    rag.ingest([tree])
    assert CountingEmbedder.loads > 0
    CountingEmbedder.loads = 0
    assert rag.ingest([tree]).files.unchanged == 3 and CountingEmbedder.loads == 0


def test_a_store_that_refuses_a_write_stops_the_run_with_its_error(test_settings, tree, monkeypatch):
    """A write the store refuses (here a full disk) is the store's failure, not the file's: the run stops with the
    store's own error. (It used to be reported as the current file being unreadable while the run went on, and a
    file whose chunks shared the failed batch was counted as added, then called unchanged ever after.)"""
    from rag_app.api import RAG
    from rag_app.components.store import VectorStore

    rag = RAG(test_settings, **{"ingest.batch_chunks": 2})
    upsert, calls = VectorStore.upsert, []

    def full_disk_at_the_second_batch(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return upsert(self, *args, **kwargs)

    monkeypatch.setattr(VectorStore, "upsert", full_disk_at_the_second_batch)
    with pytest.raises(IngestStoppedError, match="No space left on device.*ingest again") as stopped:
        rag.ingest([tree])
    assert isinstance(stopped.value.__cause__, OSError)
    written = len(calls)
    monkeypatch.setattr(VectorStore, "upsert", upsert)
    assert written == 2  # nothing was written after the failure
    summary = rag.ingest([tree])  # the next run stores every file
    assert summary.ok and summary.files.added + summary.files.unchanged == 3
    clean = RAG(test_settings, **{"store.collection": "clean"})
    clean.ingest([tree])
    assert stored(rag).keys() == stored(clean).keys()


def test_progress_is_reported_from_the_calling_thread_and_counts_every_chunk(test_settings, tree):
    """A batch is embedded on a helper thread while the one before is stored and the next files are chunked; a
    progress bar (Streamlit's cannot be driven from another thread) still hears only from the calling thread."""
    import threading

    from rag_app.api import RAG

    rag = RAG(test_settings, **{"ingest.batch_chunks": 1})
    seen = []
    summary = rag.ingest([tree], progress=lambda p: seen.append((threading.get_ident(), p.chunks_written)))
    assert {ident for ident, _ in seen} == {threading.get_ident()}
    assert [written for _, written in seen] == sorted(written for _, written in seen)
    assert seen[-1][1] == summary.chunks_written == len(stored(rag))


def test_an_embedder_failure_stops_the_run_with_its_own_error_and_leaves_no_thread(test_settings, tree,
                                                                                  monkeypatch):
    import threading

    from rag_app.api import RAG
    from rag_app.components.embedder import FakeEmbedder
    from rag_app.components.store import VectorStore

    class DiesAtTheSecondBatch(FakeEmbedder):
        calls = 0

        def _embed_batch(self, texts):
            DiesAtTheSecondBatch.calls += 1
            if DiesAtTheSecondBatch.calls == 2:
                try:
                    raise ConnectionError("embedding server gone")
                except ConnectionError as cause:
                    raise RuntimeError("embedder died") from cause
            return super()._embed_batch(texts)

    upsert, upserts = VectorStore.upsert, []
    monkeypatch.setattr(VectorStore, "upsert", lambda self, *a, **k: (upserts.append(1), upsert(self, *a, **k))[1])
    rag = RAG(test_settings, embedder=DiesAtTheSecondBatch(batch_size=1), **{"ingest.batch_chunks": 1})
    with pytest.raises(RuntimeError, match="embedder died") as raised:
        rag.ingest([tree])
    assert isinstance(raised.value.__cause__, ConnectionError)  # the cause is kept for the user to read
    assert len(upserts) == 1  # the batch before the failure, nothing after it
    assert not [t for t in threading.enumerate() if t.name.startswith("ingest-embed")]


def test_an_embedder_whose_counter_may_share_its_tokenizer_embeds_on_the_calling_thread(test_settings, tree):
    """A user's own token counter (say, the model tokenizer's) may not run beside the model: no helper thread."""
    import threading

    from rag_app.api import RAG
    from rag_app.components.langchain_embedder import LangChainEmbedder

    class Embeddings:
        threads: set = set()

        def embed_documents(self, texts):
            Embeddings.threads.add(threading.get_ident())
            return [[1.0, float(len(text) % 7), 0.5] for text in texts]

        def embed_query(self, text):
            return [1.0, 0.0, 0.5]

    shared = LangChainEmbedder(Embeddings(), name="user-model", count_tokens=lambda text: len(text.split()))
    RAG(test_settings, embedder=shared, **{"ingest.batch_chunks": 1}).ingest([tree])
    assert Embeddings.threads == {threading.get_ident()}


@pytest.mark.parametrize("batch", [1, 2, 3])
def test_a_changed_files_new_chunks_are_stored_before_its_old_ones_go(test_settings, tmp_path, monkeypatch, batch):
    """The crash-safety order per changed file, with its new chunks across batches and a batch being embedded while
    the one before is stored: its new chunks stored, then its kept chunks re-labelled, then its stale ones deleted;
    a file that only lost chunks (nothing new to embed) too. The result equals a fresh ingest."""
    from pathlib import Path

    from rag_app.api import RAG
    from rag_app.components.store import VectorStore

    root = tmp_path / "docs"
    sections = [f"## Part {i}\n\nNote {i} on generative models, diffusion step {i}." for i in range(6)]
    write(root / "a.md", "# A\n\n" + "\n\n".join(sections) + "\n")
    write(root / "b.md", "# B\n\n" + "\n\n".join(s.replace("Note", "Remark") for s in sections) + "\n")
    write(root / "c.md", "# C\n\nA short note on flows.\n")
    rag = RAG(test_settings, **{"ingest.batch_chunks": batch})
    rag.ingest([root])
    path_of = {rid: meta["path"] for rid, meta in stored(rag).items()}
    write(root / "a.md", "# A\n\n" + "\n\n".join(sections[:2] + [s + " Changed." for s in sections[2:5]]) + "\n")
    write(root / "b.md", "# B\n\n" + "\n\n".join(s.replace("Note", "Remark") for s in sections[:3]) + "\n")

    ops: list[tuple[str, str]] = []  # (operation, path) in the order the store saw them
    for name in ("upsert", "update_metadata", "delete"):
        original = getattr(VectorStore, name)

        def spy(self, ids, *args, _name=name, _original=original, **kwargs):
            metadatas = args[-1] if _name != "delete" else None
            for i, rid in enumerate(ids):
                ops.append((_name, Path(metadatas[i]["path"] if metadatas else path_of[rid]).name))
            return _original(self, ids, *args, **kwargs)

        monkeypatch.setattr(VectorStore, name, spy)
    summary = rag.ingest([root])
    assert summary.files.updated == 2 and summary.files.unchanged == 1
    for path in ("a.md", "b.md"):
        mine = [op for op, p in ops if p == path]
        assert "delete" in mine
        first_old = min(i for i, op in enumerate(mine) if op != "upsert")
        assert all(op != "upsert" for op in mine[first_old:]), (path, mine)
        assert mine.index("delete") > max((i for i, op in enumerate(mine) if op == "update_metadata"), default=-1)
    assert [op for op, p in ops if p == "a.md"].count("upsert") == 3
    fresh = RAG(test_settings, **{"store.collection": "fresh"})
    fresh.ingest([root])
    assert stored(rag).keys() == stored(fresh).keys()


def test_the_cli_reports_a_store_that_refuses_a_write_in_one_line_with_the_fix(test_settings, tree, monkeypatch,
                                                                               capsys):
    from rag_app.cli import main
    from rag_app.components.store import VectorStore

    monkeypatch.setenv("RAG_PROFILE", "test")
    monkeypatch.setenv("RAG_HOME", str(test_settings.home))

    def full_disk(self, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(VectorStore, "upsert", full_disk)
    assert main(["ingest", str(tree), "--quiet"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "Traceback" not in error
    assert "No space left on device" in error and "ingest again" in error

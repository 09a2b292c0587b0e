"""Concurrency: parallel asks while an ingest runs (threads), two ingesting processes on one embedded store
(the writer lock serialises them), and a process reading while another writes."""

from __future__ import annotations

import subprocess
import threading
import time

import pytest
from reliability_support import (
    StderrWatcher,
    assert_vector_index_complete,
    lock_held_elsewhere,
    make_corpus,
    rag_cmd,
    rag_env,
    snapshot,
)

from rag_app.api import RAG
from rag_app.errors import RagError, StoreLockedError
from rag_app.settings import Settings

ASKERS = 8


def has_answer_service() -> bool:
    try:
        import rag_app.services.answer  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.slow
@pytest.mark.parametrize("call", ["retrieve", "ask"])
def test_parallel_queries_while_an_ingest_runs(tmp_path, call):
    if call == "ask" and not has_answer_service():
        pytest.skip("the answer service has not landed yet")
    settings = Settings(profile="test", home=tmp_path / "home", ingest={"batch_chunks": 8})
    rag = RAG(settings)
    rag.ingest([make_corpus(tmp_path / "first", n_files=6, sections=4)])
    second = make_corpus(tmp_path / "second", n_files=12, sections=8, seed=5)

    errors: list[BaseException] = []
    done = threading.Event()
    counts = [0] * ASKERS

    def asker(slot: int) -> None:
        question = f"What is fact {slot % 6}-{slot % 4}?"
        while not done.is_set() or counts[slot] < 3:
            try:
                if call == "ask":
                    answer = rag.ask(question)
                    assert answer.sources, "an answer without sources"
                else:
                    assert rag.retrieve(question, k=4)
            except BaseException as exc:  # noqa: BLE001 - collected and reported below
                errors.append(exc)
                return
            counts[slot] += 1

    threads = [threading.Thread(target=asker, args=(slot,)) for slot in range(ASKERS)]
    for thread in threads:
        thread.start()
    try:
        summary = rag.ingest([second])
    finally:
        done.set()
        for thread in threads:
            thread.join(timeout=300)
    assert not errors, errors[:3]
    assert summary.ok and summary.files.added == 12
    assert min(counts) >= 3

    reference = RAG(settings, **{"store.collection": "reference"})
    reference.ingest([make_corpus(tmp_path / "first", n_files=6, sections=4), second])
    assert snapshot(rag.store()) == snapshot(reference.store())  # no lost writes
    assert_vector_index_complete(rag.store(), rag.embedder)


@pytest.mark.slow
def test_two_processes_ingesting_one_embedded_store_are_serialised(tmp_path):
    home = tmp_path / "home"
    shared = make_corpus(tmp_path / "shared", n_files=6, sections=6, seed=1)
    only_a = make_corpus(tmp_path / "only-a", n_files=6, sections=6, seed=2)
    only_b = make_corpus(tmp_path / "only-b", n_files=6, sections=6, seed=3)
    env = rag_env(home, RAG_INGEST__BATCH_CHUNKS="8")
    procs = [subprocess.Popen(rag_cmd("ingest", str(a), str(b), "--quiet"), env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for a, b in ((shared, only_a), (only_b, shared))]
    results = [proc.communicate(timeout=600) for proc in procs]
    for proc, (_, err) in zip(procs, results):
        assert proc.returncode == 0, err

    rag = RAG(Settings(profile="test", home=home))
    reference = RAG(Settings(profile="test", home=tmp_path / "reference"))
    reference.ingest([shared, only_a, only_b])
    got = snapshot(rag.store())
    assert got == snapshot(reference.store())
    positions = [(meta["path"], meta["chunk_index"]) for _, meta in got.values()]
    assert len(positions) == len(set(positions))  # no chunk stored twice under different ids
    assert_vector_index_complete(rag.store(), rag.embedder)


def test_a_held_writer_lock_gives_a_clear_error(tmp_path):
    settings = Settings(profile="test", home=tmp_path / "home")
    store = RAG(settings).store()
    lock_path = settings.chroma_dir / "rag-writer.lock"
    with lock_held_elsewhere(lock_path):
        with pytest.raises(StoreLockedError, match="another process") as failure:
            with store.writer_lock(timeout_s=0.5):
                pass
        assert str(lock_path) in str(failure.value) and isinstance(failure.value, RagError)
    with store.writer_lock(timeout_s=5):  # released with the holder
        pass


def test_queries_do_not_wait_while_another_process_opens_the_store(tmp_path):
    """Opening an embedded store takes an init lock across processes (schema creation); a process that has opened it
    must not take it again, or every query waits while another process (a starting ingest, a background merge)
    opens the store: seen as a ~0.5 s stall of all queries in a serving process once per merge."""
    settings = Settings(profile="test", home=tmp_path / "home")
    rag = RAG(settings)
    rag.ingest([make_corpus(tmp_path / "corpus", n_files=2, sections=2)])
    with lock_held_elsewhere(settings.chroma_dir / "rag-init.lock"):
        done: list = []
        reader = threading.Thread(target=lambda: done.append((rag.store().generation(), rag.retrieve("Fact 1-1"))),
                                  daemon=True)
        reader.start()
        reader.join(timeout=30)  # (blocked, it would wait up to the init lock's 120 s timeout)
        assert done and done[0][1], "a query waited on the init lock another process holds"


@pytest.mark.slow
def test_reading_while_another_process_writes(tmp_path):
    home = tmp_path / "home"
    corpus = make_corpus(tmp_path / "corpus", n_files=20, sections=10)
    rag = RAG(Settings(profile="test", home=home))
    rag.ingest([make_corpus(tmp_path / "seed", n_files=2, sections=4)])  # the reader opens an existing store
    store = rag.store()
    writer = subprocess.Popen(rag_cmd("ingest", str(corpus)), env=rag_env(home, RAG_INGEST__BATCH_CHUNKS="8"),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    watcher = StderrWatcher(writer)
    counts, errors, reads = [], [], 0
    while writer.poll() is None:
        try:
            counts.append(store.count())
            store.query(rag.embedder.embed_query("beacon cedar ripple"), 5)
            rag.retrieve("Fact 3-2 quartz", k=4)
            reads += 1
        except Exception as exc:  # noqa: BLE001 - collected and reported below
            errors.append(repr(exc))
        time.sleep(0.05)
    writer.stdout.close()
    assert writer.returncode == 0, watcher.join()
    assert not errors, errors[:3]
    assert reads >= 3 and counts == sorted(counts)  # the reader saw the writes arrive, never lose any
    assert store.count() == 8 + 200

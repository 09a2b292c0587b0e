"""Workers on one real `chroma run`, each with its own data home: a worker whose BM25 index is behind the store
catches up by the store's change log, reading only the records the writes touched, and ends equal to a rebuild.
A writer killed (`kill -9`) at any step of its run leaves a log that still brings readers to what the store holds."""

from __future__ import annotations

from pathlib import Path

import pytest
from reliability_support import ChromaServer, make_corpus, rag_env, run_child, snapshot

from rag_app.api import RAG
from rag_app.settings import Settings

CHILD = str(Path(__file__).with_name("change_log_child.py"))
UNIQUE = "zorbulator quasiquartz"


@pytest.fixture
def server(tmp_path):
    chroma = ChromaServer(tmp_path / "server-data").start()
    yield chroma
    chroma.stop()


def worker(tmp_path: Path, name: str, url: str) -> RAG:
    return RAG(Settings(profile="test", home=tmp_path / f"home-{name}", store={"url": url, "collection": "shared"},
                        retrieve={"lexical_check_s": 0.0}))


def added_file(tmp_path: Path) -> Path:
    path = tmp_path / "added" / "machines.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("# Odd machines\n\n## The first\n\nThe zorbulator was built by Ada Quill in 1907.\n\n"
                    "## The second\n\nA quasiquartz lens focuses the zorbulator's beam onto a brass plate.\n",
                    encoding="utf-8")
    return path


def lexical_of(rag: RAG):
    return rag.retriever().lexical


def test_a_worker_catches_up_by_the_log_reading_only_what_changed(tmp_path, server):
    a, b = worker(tmp_path, "a", server.url), worker(tmp_path, "b", server.url)
    assert a.ingest([make_corpus(tmp_path / "corpus", n_files=6, sections=4)]).ok
    index_b = lexical_of(b)
    assert not index_b.current().search(UNIQUE, 5)
    assert index_b.counters["full_builds"] == 1
    read_at_build = index_b.counters["records_read"]

    added = added_file(tmp_path)
    summary = a.ingest([added])
    assert summary.ok and summary.chunks_written >= 2
    hits = index_b.current().search(UNIQUE, 5)
    assert hits and all(b.store().get([h for h, _ in hits])["metadatas"][i]["source"].endswith("machines.md")
                        for i in range(len(hits)))
    assert index_b.counters["full_builds"] == 1 and index_b.counters["catch_ups"] >= 1
    # Proportional to the change: the records of the added file, not the collection.
    assert index_b.counters["records_read"] - read_at_build == summary.chunks_written
    assert set(index_b.current().ids) == set(snapshot(b.store()))

    assert a.delete_document(str(added))
    assert not index_b.current().search(UNIQUE, 5)
    assert set(index_b.current().ids) == set(snapshot(b.store()))
    assert index_b.counters["full_builds"] == 1

    # Equal to a rebuild: a third worker that builds from the whole collection ranks the same chunks.
    rebuilt = lexical_of(worker(tmp_path, "c", server.url)).current()
    caught_up = index_b.current()
    assert set(rebuilt.ids) == set(caught_up.ids)
    for query in ("beacon cedar ripple", "Fact 3-2 quartz", "glacier pepper violet"):
        assert {h for h, _ in rebuilt.search(query, 5)} == {h for h, _ in caught_up.search(query, 5)}


def test_collections_hide_their_change_logs_and_drop_takes_the_log_too(tmp_path, server):
    a = worker(tmp_path, "a", server.url)
    assert a.ingest([added_file(tmp_path)]).ok
    assert [c.name for c in a.collections()] == ["shared"]
    import chromadb

    host, port = server.url.rsplit(":", 1)
    client = chromadb.HttpClient(host="127.0.0.1", port=int(port))
    assert sorted(c.name for c in client.list_collections()) == ["shared", "shared.rag-changes"]
    assert a.drop_collection("shared")
    assert not client.list_collections()


def run_writer(home: Path, url: str, file: Path, stop_at: str | None = None) -> tuple[str, int]:
    return run_child([CHILD, str(file)], rag_env(home, RAG_STORE__URL=url, RAG_STORE__COLLECTION="shared"),
                     stop_at)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_writer_killed_at_any_step_leaves_a_log_readers_catch_up_by(tmp_path, server):
    writer_home = tmp_path / "home-writer"
    writer = worker(tmp_path, "writer", server.url)
    assert writer.ingest([make_corpus(tmp_path / "corpus", n_files=4, sections=3)]).ok
    reader = lexical_of(worker(tmp_path, "reader", server.url))
    reader.current()
    added = added_file(tmp_path)

    text, code = run_writer(writer_home, server.url, added)
    assert code == 0, text[-2000:]
    steps = int(text.rsplit("log-steps=", 1)[1].split()[0])
    assert steps >= 5  # open, its stamp, the ids of each call (one here), close, the final stamp
    assert set(reader.current().ids) == set(snapshot(writer.store()))
    assert writer.delete_document(str(added))

    for step in range(1, steps + 1):
        for phase in ("step", "done"):
            text, code = run_writer(writer_home, server.url, added, stop_at=f"log-{phase}={step}")
            assert code == -9, text[-2000:]
            held = set(snapshot(writer.store()))
            assert set(reader.current().ids) == held, (phase, step)
            text, code = run_writer(writer_home, server.url, added)  # the rerun finishes the file
            assert code == 0, text[-2000:]
            assert set(reader.current().ids) == set(snapshot(writer.store())), (phase, step)
            assert reader.current().search(UNIQUE, 5)
            assert writer.delete_document(str(added))
            assert set(reader.current().ids) == set(snapshot(writer.store())), (phase, step)
    assert reader.counters["full_builds"] == 1, reader.counters  # every catch-up went by the log

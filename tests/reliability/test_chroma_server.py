"""Chroma server mode for real: `chroma run` in a subprocess, the app through HttpClient.

Same ids and results as the embedded store; a server that dies mid-session gives a clear error naming the URL,
leaves nothing half-done that a retry cannot finish, and the same (cached) client works once the server is back.
"""

from __future__ import annotations

import signal
import subprocess

import pytest
from reliability_support import ChromaServer, free_port, make_corpus, rag_cmd, rag_env, snapshot

from rag_app.api import RAG
from rag_app.errors import StoreUnavailableError
from rag_app.settings import Settings

QUERIES = ["beacon cedar ripple", "Fact 3-2 quartz", "glacier pepper violet", "Topic 5"]


@pytest.fixture
def server(tmp_path):
    chroma = ChromaServer(tmp_path / "server-data").start()
    yield chroma
    chroma.stop()


@pytest.fixture
def corpus(tmp_path):
    return make_corpus(tmp_path / "corpus", n_files=6, sections=4)


def http_rag(tmp_path, url: str, **ingest) -> RAG:
    return RAG(Settings(profile="test", home=tmp_path / "http-home", store={"url": url}, ingest=ingest or {}))


def test_server_mode_gives_the_same_records_and_results_as_embedded(tmp_path, server, corpus):
    remote = http_rag(tmp_path, server.url)
    local = RAG(Settings(profile="test", home=tmp_path / "embedded-home"))
    remote_summary = remote.ingest([corpus])
    local_summary = local.ingest([corpus])

    assert remote_summary.ok and remote_summary.files.added == 6
    assert remote_summary.chunks_written == local_summary.chunks_written
    assert snapshot(remote.store()) == snapshot(local.store())
    for query in QUERIES:
        remote_hits, local_hits = remote.retrieve(query, k=5), local.retrieve(query, k=5)
        assert [h.id for h in remote_hits] == [h.id for h in local_hits]
        assert [h.score for h in remote_hits] == pytest.approx([h.score for h in local_hits], abs=1e-4)
    # Idempotent over HTTP too.
    again = remote.ingest([corpus])
    assert again.files.unchanged == 6 and again.chunks_written == 0


def test_server_dying_mid_ingest_is_reported_and_a_retry_converges(tmp_path, server, corpus):
    rag = http_rag(tmp_path, server.url, batch_chunks=8)
    rag.ingest([corpus])
    before = snapshot(rag.store())
    generation_before = rag.store().generation()
    make_corpus(corpus / "more", n_files=5, sections=4, seed=11)  # new files for the interrupted run

    def kill_after_first_batch(progress):
        if progress.chunks_written >= 8 and server.proc is not None:
            server.stop(signal.SIGKILL)

    with pytest.raises(StoreUnavailableError, match=f"Chroma server at {server.url}") as failure:
        rag.ingest([corpus], progress=kill_after_first_batch)
    assert "chroma run" in str(failure.value)  # the message names the fix
    for call in (lambda: rag.retrieve("lantern"), lambda: rag.store().count(), rag.collections):
        with pytest.raises(StoreUnavailableError, match=server.url):
            call()

    server.start()  # same path, same port: the lru-cached HttpClient for this URL must work again
    partial = snapshot(rag.store())
    assert before.items() <= partial.items()  # finished files untouched
    assert rag.store().generation() != generation_before  # derived indexes know to rebuild

    reference = RAG(Settings(profile="test", home=tmp_path / "reference-home"))
    reference.ingest([corpus])
    expected = snapshot(reference.store())
    assert partial.keys() <= expected.keys()  # only records of the final state, nothing stray

    retry = rag.ingest([corpus])
    assert retry.ok and retry.files.added >= 1 and retry.files.added + retry.files.unchanged == 11
    assert retry.chunks_written == len(expected) - len(partial)  # stored chunks are not redone
    assert snapshot(rag.store()) == expected
    # The vector indexes agree completely (a full ranking; hybrid ties may break by insertion order, which differs).
    vector = rag.embedder.embed_query("Fact 8-1 glacier")
    got = {h.id: h.score for h in rag.store().query(vector, len(expected))}
    want = {h.id: h.score for h in reference.store().query(vector, len(expected))}
    assert got.keys() == want.keys() and list(got.values()) == pytest.approx(list(want.values()), abs=1e-4)


def test_cli_names_the_url_when_no_server_answers(tmp_path, corpus):
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    done = subprocess.run(rag_cmd("ingest", str(corpus), "--chroma-url", url, "--quiet"),
                          env=rag_env(tmp_path / "home"), capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rag: error:") and url in lines[0], done.stderr
    assert "Traceback" not in done.stderr

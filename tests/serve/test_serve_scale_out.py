"""Two `rag serve` workers on one Chroma server, each with its own data home: an upload ingested through worker A
is answered by worker B (B's lexical index notices the write by the store's generation stamp). With the Chroma
server down the workers say 503 naming its URL, and answer again once it is back."""

from __future__ import annotations

import httpx
import pytest
from serve_support import FIXTURES_DIR, ChromaServer, Server, wait_for_job

QUESTION = "Who invented the zorbulator?"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    root = tmp_path_factory.mktemp("cluster")
    chroma = ChromaServer(root / "chroma-data").start()
    workers = []
    try:
        for name in ("a", "b"):
            workers.append(Server(root / f"home-{name}", "--collection", "shared", RAG_STORE__URL=chroma.url).start())
        yield chroma, workers
    finally:
        for worker in workers:
            worker.stop()
        chroma.stop()


def ask(worker: Server, question: str = QUESTION):
    return httpx.post(worker.base + "/chat/completions", timeout=60,
                      json={"model": "rag:shared", "messages": [{"role": "user", "content": question}]})


@pytest.mark.slow
def test_an_ingest_through_one_worker_is_answered_by_the_other(cluster):
    _, (a, b) = cluster
    assert ask(b).json()["refused"] is True  # nothing ingested yet
    with a.client() as http:
        upload = http.post("/v1/ingest", data={"collection": "shared"},
                           files=[("files", ("odd_machines.md", (FIXTURES_DIR / "odd_machines.md").read_bytes()))])
        assert upload.status_code == 202, upload.text
        assert wait_for_job(http, upload.json()["id"])["status"] == "succeeded"
    answer = ask(b).json()
    assert answer["refused"] is False and "Ada Quill" in answer["choices"][0]["message"]["content"]
    assert answer["sources"][0]["source"] == "odd_machines.md"
    with b.client() as http:  # B sees the document A wrote, and may delete it for both
        assert [d["source"] for d in http.get("/v1/collections/shared/documents").json()["data"]] == \
            ["odd_machines.md"]
    assert not (b.home / "uploads").exists()  # the upload stayed on A: only the store is shared


@pytest.mark.slow
def test_a_chroma_server_that_is_down_is_503_naming_it_and_recovers(cluster):
    chroma, (a, b) = cluster
    assert ask(a).status_code == 200
    chroma.stop()
    try:
        ready = httpx.get(a.url + "/ready", timeout=60)
        assert ready.status_code == 503 and ready.json()["status"] == "store_unavailable"
        assert chroma.url in ready.json()["reason"]
        response = ask(a)
        assert response.status_code == 503, response.text
        error = response.json()["error"]
        assert chroma.url in error["message"] and error["type"] == "service_unavailable"
        streamed = httpx.post(b.base + "/chat/completions", timeout=60, json={
            "model": "shared", "stream": True, "messages": [{"role": "user", "content": QUESTION}]})
        assert streamed.status_code == 503 and chroma.url in streamed.json()["error"]["message"]
    finally:
        chroma.start()
    for worker in (a, b):
        assert httpx.get(worker.url + "/ready", timeout=60).status_code == 200
        assert "Ada Quill" in ask(worker).json()["choices"][0]["message"]["content"]

"""`rag serve` for real (uvicorn in a subprocess, test profile) driven by the official `openai` client, LangChain's
`ChatOpenAI` and raw httpx: answers equal the in-process `RAG`'s, sources and refusals travel in extra fields,
and every bad request gets the status and the field at fault."""

from __future__ import annotations

import base64
import threading
from pathlib import Path

import numpy as np
import pytest
from serve_support import Server, wait_for_job

from rag_app.services.answer import REFUSAL

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "docs"
QUESTION = "What is a VAE?"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    # Small limits, so the oversize cases are cheap: 64 KB of JSON, 1 MB per upload request, 0.5 MB per file.
    srv = Server(root / "home", RAG_SERVE__MAX_BODY_KB="64", RAG_SERVE__MAX_UPLOAD_MB="1",
                 RAG_INGEST__MAX_FILE_MB="0.5").start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def openai_client(server):
    openai = pytest.importorskip("openai")
    return openai.OpenAI(base_url=server.base, api_key="unused", max_retries=0)


@pytest.fixture
def http(server):
    with server.client() as client:
        yield client


def test_chat_completion_equals_the_in_process_answer(openai_client, reference):
    completion = openai_client.chat.completions.create(model="rag:default",
                                                       messages=[{"role": "user", "content": QUESTION}])
    expected = reference.ask(QUESTION)
    assert completion.object == "chat.completion" and completion.model == "rag:default"
    assert completion.choices[0].message.content == expected.text
    assert "[1]" in expected.text  # citations stay in the content
    extra = completion.model_extra
    assert extra["refused"] is False
    assert [s["source"] for s in extra["sources"]] == [s.source for s in expected.sources]
    first = extra["sources"][0]
    assert first["source"] == "vae.md" and first["text"] == expected.sources[0].text
    assert {"title", "section", "page", "lines", "score", "locator", "cited"} <= first.keys()
    usage = completion.usage
    assert usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_streamed_chunks_add_up_to_the_answer_and_end_with_the_sources(openai_client, reference):
    stream = openai_client.chat.completions.create(model="rag:default", stream=True,
                                                   messages=[{"role": "user", "content": QUESTION}])
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    expected = reference.ask(QUESTION)
    assert text.strip() == expected.text
    assert len(chunks) > 3  # really streamed, piece by piece
    last = chunks[-1]
    assert last.choices[0].finish_reason == "stop"
    assert [s["source"] for s in last.model_extra["sources"]] == [s.source for s in expected.sources]
    assert last.model_extra["refused"] is False and last.usage.total_tokens > 0
    assert all("sources" not in (c.model_extra or {}) for c in chunks[:-1])


def test_raw_stream_ends_with_done(http):
    with http.stream("POST", "/v1/chat/completions", json={"model": "rag:default", "stream": True,
                                                           "messages": [{"role": "user", "content": QUESTION}]}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = [line for line in r.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "data: [DONE]"


def test_refusal_says_so_in_a_field(openai_client):
    completion = openai_client.chat.completions.create(
        model="rag:default", messages=[{"role": "user", "content": "Who won the 1998 FIFA World Cup final?"}])
    assert completion.choices[0].message.content == REFUSAL
    assert completion.model_extra["refused"] is True and completion.model_extra["sources"] == []


def test_earlier_turns_are_the_history_and_parallel_conversations_stay_apart(openai_client):
    topics = ["VAE", "GAN", "diffusion model", "normalizing flow"] * 2
    results: dict[int, str] = {}
    errors: list[BaseException] = []

    def converse(slot: int) -> None:
        try:
            topic = topics[slot]
            completion = openai_client.chat.completions.create(model="rag:default", messages=[
                {"role": "system", "content": "Answer from the documents."},
                {"role": "user", "content": f"What is a {topic}?"},
                {"role": "assistant", "content": f"A {topic} is a generative model [1]."},
                {"role": "user", "content": "How is it trained?"}])
            results[slot] = completion.model_extra["standalone_question"]
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=converse, args=(slot,)) for slot in range(len(topics))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors[:2]
    assert results == {slot: f"How is {topic} trained?" for slot, topic in enumerate(topics)}


def test_models_list_the_collections(openai_client):
    assert "rag:default" in [m.id for m in openai_client.models.list()]
    assert openai_client.models.retrieve("rag:default").id == "rag:default"


def test_embeddings_are_our_embedders_in_both_encodings(openai_client, http, reference):
    texts = ["variational autoencoder", "a lantern in the harbour"]
    expected = reference.embedder.embed(texts)
    response = openai_client.embeddings.create(model="any", input=texts)  # the client asks for base64
    got = np.array([d.embedding for d in response.data])
    assert got.shape == expected.shape and np.allclose(got, expected, atol=1e-6)
    assert response.model == reference.embedder.name and response.usage.prompt_tokens > 0
    plain = http.post("/v1/embeddings", json={"model": "any", "input": texts[0], "encoding_format": "float"})
    assert plain.status_code == 200
    assert np.allclose(plain.json()["data"][0]["embedding"], expected[0], atol=1e-6)
    packed = http.post("/v1/embeddings", json={"input": [texts[1]], "encoding_format": "base64"}).json()
    vector = np.frombuffer(base64.b64decode(packed["data"][0]["embedding"]), dtype="<f4")
    assert np.allclose(vector, expected[1], atol=1e-6)


def test_langchain_chat_openai_talks_to_it(server, reference):
    langchain_openai = pytest.importorskip("langchain_openai")
    chat = langchain_openai.ChatOpenAI(base_url=server.base, api_key="unused", model="rag:default", max_retries=0)
    expected = reference.ask(QUESTION).text
    assert chat.invoke(QUESTION).content == expected
    assert "".join(chunk.content for chunk in chat.stream(QUESTION)).strip() == expected


# -- errors ------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("body, param, words", [
    (b'{"model": "rag:default", "messages": [', "body", "not valid JSON"),
    (b'["not", "an", "object"]', "body", "JSON object"),
    (b'{"model": "rag:default"}', "messages", "messages: Field required"),
    (b'{"model": "rag:default", "messages": []}', "messages", "messages"),
    (b'{"messages": [{"role": "system", "content": "hi"}]}', "messages", "no user message"),
    (b'{"messages": [{"role": "wizard", "content": "hi"}]}', "messages.0.role", "messages.0.role"),
])
def test_bad_chat_requests_are_400_naming_the_field(http, body, param, words):
    response = http.post("/v1/chat/completions", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param and words in error["message"] and error["type"] == "invalid_request_error"


def test_unknown_model_or_collection_is_404(http, openai_client):
    import openai

    with pytest.raises(openai.NotFoundError, match="rag:nowhere"):
        openai_client.chat.completions.create(model="rag:nowhere", messages=[{"role": "user", "content": "hi"}])
    for response in (http.post("/v1/retrieve", json={"query": "vae", "collection": "nowhere"}),
                     http.get("/v1/collections/nowhere/documents"), http.get("/v1/jobs/job-unknown"),
                     http.delete("/v1/collections/default/documents/no-such-file.md")):
        assert response.status_code == 404, response.text
        assert response.json()["error"]["type"] == "not_found_error"
    assert not any(c["name"] == "nowhere" for c in http.get("/v1/collections").json()["data"])  # nothing created


def test_a_json_body_over_the_limit_is_413(http):
    big = {"model": "rag:default", "messages": [{"role": "user", "content": "x" * 70_000}]}
    response = http.post("/v1/chat/completions", json=big)
    assert response.status_code == 413 and "64 KB" in response.json()["error"]["message"]

    def chunked():  # no Content-Length: counted as it arrives
        yield b'{"model": "rag:default", "messages": [{"role": "user", "content": "'
        for _ in range(20):
            yield b"y" * 5000
        yield b'"}]}'

    response = http.post("/v1/chat/completions", content=chunked(), headers={"content-type": "application/json"})
    assert response.status_code == 413


# -- uploads -------------------------------------------------------------------------------------------------------------
def test_upload_then_ask_list_retrieve_and_delete(http, openai_client, server):
    content = (FIXTURES / "odd_machines.md").read_bytes()
    response = http.post("/v1/ingest", data={"collection": "machines"},
                         files=[("files", ("odd_machines.md", content, "text/markdown"))])
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["status"] in ("queued", "running", "succeeded") and job["files"] == ["odd_machines.md"]
    assert response.headers["location"] == f"/v1/jobs/{job['id']}"
    done = wait_for_job(http, job["id"])
    assert done["status"] == "succeeded" and done["result"]["files"]["added"] == 1
    assert done["progress"]["files_done"] == 1 and done["result"]["chunks_written"] > 0
    assert (server.home / "uploads" / "machines" / "odd_machines.md").read_bytes() == content

    completion = openai_client.chat.completions.create(
        model="rag:machines", messages=[{"role": "user", "content": "Who invented the zorbulator?"}])
    assert "Ada Quill" in completion.choices[0].message.content
    assert completion.model_extra["sources"][0]["source"] == "odd_machines.md"

    hits = http.post("/v1/retrieve", json={"question": "Who invented the zorbulator?", "collection": "rag:machines",
                                           "k": 2}).json()
    assert [h["rank"] for h in hits["data"]] == [1, 2][: len(hits["data"])]
    assert hits["data"][0]["source"] == "odd_machines.md" and "Ada Quill" in hits["data"][0]["text"]
    listed = {c["name"]: c for c in http.get("/v1/collections").json()["data"]}
    assert listed["machines"]["chunks"] > 0 and listed["default"]["default"] is True
    docs = http.get("/v1/collections/machines/documents").json()["data"]
    assert [d["source"] for d in docs] == ["odd_machines.md"]

    deleted = http.delete("/v1/collections/machines/documents/odd_machines.md")
    assert deleted.status_code == 200 and deleted.json()["chunks"] == listed["machines"]["chunks"]
    assert http.get("/v1/collections/machines/documents").json()["data"] == []
    assert http.post("/v1/retrieve", json={"query": "zorbulator", "collection": "machines"}).json()["data"] == []
    assert http.delete("/v1/collections/machines/documents/odd_machines.md").status_code == 404


@pytest.mark.parametrize("name", ["../../evil.md", "/etc/evil.md", "..\\..\\evil.md", "a/../../evil.md"])
def test_upload_names_that_traverse_are_refused(http, server, name):
    response = http.post("/v1/ingest", data={"collection": "traversal"},
                         files=[("files", (name, b"# Evil\n\nPlanted text.\n", "text/markdown"))])
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == "files" and ("'..'" in error["message"] or "absolute" in error["message"])
    assert not list(server.home.parent.rglob("evil.md"))


def test_uploads_over_the_limits_are_413(http):
    per_file = http.post("/v1/ingest", files=[("files", ("big.md", b"a" * 600_000, "text/markdown"))])
    assert per_file.status_code == 413 and "0.5 MB limit" in per_file.json()["error"]["message"]
    whole = http.post("/v1/ingest", files=[("files", (f"part{i}.md", b"b" * 400_000, "text/markdown"))
                                           for i in range(3)])
    assert whole.status_code == 413 and "1 MB" in whole.json()["error"]["message"]
    bad_collection = http.post("/v1/ingest", data={"collection": "no/slashes"},
                               files=[("files", ("ok.md", b"# ok\n\ntext\n", "text/markdown"))])
    assert bad_collection.status_code == 400 and "collection name" in bad_collection.json()["error"]["message"]


@pytest.mark.parametrize("body, param", [({"input": [101, 2023]}, "input"), ({"input": []}, "input"),
                                         ({"model": "any"}, "input"), ({"input": "x", "encoding_format": "hex"},
                                                                      "encoding_format")])
def test_bad_embedding_requests_are_400_naming_the_field(http, body, param):
    response = http.post("/v1/embeddings", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param

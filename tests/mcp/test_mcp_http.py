"""The MCP tools over streamable HTTP at /mcp on a real `rag serve` (loopback, test profile), driven by the SDK's
`ClientSession` over `streamable_http_client`: the same answers as the in-process `RAG`, the same key as /v1, the
same loaded state as /v1 (an upload through /v1 is searchable through /mcp), and two clients with several calls in
flight at once each get their own answers."""

from __future__ import annotations

import threading

import httpx
import pytest
from mcp_support import FIXTURES, READ_TOOLS, Client, Server, data, http_transport

KEY = "s3cret-mcp-key"
QUESTIONS = ["What is a VAE?", "What is a GAN?", "What is a diffusion model?", "What is attention in transformers?"]
#: The first MCP request a client sends: enough to see whether the endpoint lets it in.
INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
              "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                         "clientInfo": {"name": "raw", "version": "0"}}}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("open") / "home").start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def keyed(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("keyed") / "home", RAG_SERVE__API_KEY=KEY).start()
    yield srv
    srv.stop()


def test_the_tools_answer_over_http_as_the_python_api_does(server, reference):
    client = Client(http_transport(server.url + "/mcp"))
    try:
        assert set(client.tools()) == READ_TOOLS
        progress: list = []
        answer = data(client.call("ask", {"question": QUESTIONS[0]}, progress=progress))
        expected = reference.ask(QUESTIONS[0])
        assert answer["answer"] == expected.text and answer["sources"][0]["source"] == "vae.md"
        assert progress and progress[0][2] == "searching the documents"
        found = data(client.call("search_documents", {"query": QUESTIONS[1], "k": 2}))
        assert [c["text"] for c in found["chunks"]] == [h.text for h in reference.retrieve(QUESTIONS[1], k=2)]
        assert "unknown collection 'nope'" in " ".join(
            b.text for b in client.call("list_documents", {"collection": "nope"}).content)
    finally:
        client.close()


def test_an_upload_through_v1_is_searchable_through_mcp(server):
    """One process, one state: what /v1 ingests, /mcp finds."""
    with server.client() as http:
        upload = http.post("/v1/ingest", data={"collection": "uploads"},
                           files=[("files", ("odd_machines.md", (FIXTURES / "docs" / "odd_machines.md").read_bytes()))])
        assert upload.status_code == 202, upload.text
        from serve_support import wait_for_job

        assert wait_for_job(http, upload.json()["id"])["status"] == "succeeded"
    client = Client(http_transport(server.url + "/mcp"))
    try:
        found = data(client.call("search_documents", {"query": "Who invented the zorbulator?", "collection": "uploads"}))
        assert found["chunks"][0]["source"] == "odd_machines.md"
    finally:
        client.close()


def test_two_clients_with_several_calls_in_flight_each_get_their_own_answers(server, reference):
    clients = [Client(http_transport(server.url + "/mcp")) for _ in range(2)]
    results: dict[int, list] = {}
    try:
        def work(index: int) -> None:
            mine = QUESTIONS[index::2] + QUESTIONS[:1]  # both also ask the same first question
            calls = [("ask", {"question": q}) for q in mine] + [("search_documents", {"query": q}) for q in mine]
            results[index] = [mine, clients[index].gather(calls)]

        threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(300)
        for mine, answers in results.values():
            asked, searched = answers[:len(mine)], answers[len(mine):]
            for question, answer in zip(mine, asked):
                assert data(answer)["answer"] == reference.ask(question).text
            for question, found in zip(mine, searched):
                assert [c["text"] for c in data(found)["chunks"]] == [h.text for h in reference.retrieve(question)]
        assert len(results) == 2
    finally:
        for client in clients:
            client.close()


def test_a_host_header_that_is_not_loopback_is_refused(server):
    """DNS-rebinding protection: a web page that rebinds its own name to 127.0.0.1 cannot reach the tools."""
    refused = httpx.post(server.url + "/mcp", json=INITIALIZE, headers={**MCP_HEADERS, "Host": "evil.example"})
    assert refused.status_code == 421
    for host in (f"127.0.0.1:{server.port}", f"localhost:{server.port}"):
        response = httpx.post(server.url + "/mcp", json=INITIALIZE, headers={**MCP_HEADERS, "Host": host})
        assert response.status_code == 200, host


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong-key"}, {"Authorization": f"Basic {KEY}"}])
def test_with_a_key_set_mcp_needs_it_like_v1(keyed, headers):
    response = httpx.post(keyed.url + "/mcp", json=INITIALIZE, headers={**MCP_HEADERS, **headers})
    assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
    assert "API key" in response.json()["error"]["message"]


@pytest.mark.parametrize("key", [None, "wrong-key"])
def test_the_sdk_client_without_the_key_cannot_connect(keyed, key):
    with pytest.raises(RuntimeError, match="the MCP session failed to open"):
        Client(http_transport(keyed.url + "/mcp", key=key), timeout=60)


def test_with_the_key_the_sdk_client_works(keyed, reference):
    client = Client(http_transport(keyed.url + "/mcp", key=KEY))
    try:
        answer = data(client.call("ask", {"question": QUESTIONS[1]}))
        assert answer["answer"] == reference.ask(QUESTIONS[1]).text and answer["refused"] is False
        assert [r["name"] for r in data(client.call("list_collections"))["collections"]] == ["default"]
    finally:
        client.close()

"""`rag mcp` for real: the official SDK's `ClientSession` over `stdio_client` spawns it (test profile) and lists
and calls every read tool. Chunks and cited answers equal the in-process `RAG`'s on the same documents, locators
(page, slide, sheet) travel with them, and every bad call is a tool error with its reason while the server goes on
serving."""

from __future__ import annotations

import pytest
from mcp_support import (
    FIXTURES,
    READ_TOOLS,
    Client,
    data,
    error_text,
    free_port,
    rag_cli,
    stdio_transport,
)

from rag_app.services.answer import REFUSAL, Source

#: The "fixtures" collection: one file per locator kind (a PDF page, a slide, a sheet) and a Markdown file.
FILES = [FIXTURES / "docs" / "odd_machines.md", FIXTURES / "docs" / "orchard_survey.pdf",
         FIXTURES / "real_docs" / "kelp_farm.pptx", FIXTURES / "real_docs" / "ferry_budget.xlsx"]
QUESTION = "What is a VAE?"


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """A data home with the "fixtures" collection, and "small" built with another embedder (64 → 32 dimensions)."""
    home = tmp_path_factory.mktemp("mcp") / "home"
    rag_cli(home, "ingest", *map(str, FILES), "--collection", "fixtures", "--quiet")
    rag_cli(home, "ingest", str(FILES[0]), "--collection", "small", "--quiet", RAG_EMBEDDER__FAKE_DIM="32")
    return home


@pytest.fixture(scope="module")
def client(home):
    client = Client(stdio_transport(home))  # the default collection gets the bundled corpus at start-up
    yield client
    client.close()


@pytest.fixture(scope="module")
def reference(reference):
    """The same documents in-process: what the server must answer."""
    reference.ingest(FILES, collection="fixtures")
    return reference


def test_the_read_tools_are_listed_with_typed_schemas_and_writes_are_off(client):
    tools = client.tools()
    assert set(tools) == READ_TOOLS
    for tool in tools.values():
        assert tool.output_schema and tool.output_schema["type"] == "object", tool.name
        assert tool.annotations.read_only_hint is True and tool.description
    search = tools["search_documents"].input_schema
    assert search["required"] == ["query"]
    assert {"minimum": 1, "maximum": 100, "type": "integer"} in search["properties"]["k"]["anyOf"]
    assert set(tools["ask"].input_schema["properties"]) == {"question", "collection", "history"}
    assert client.init.server_info.name == "rag"
    assert "RAG_MCP__ALLOW_WRITES=true" in client.init.instructions


def test_search_documents_returns_the_ranked_chunks_of_the_python_api(client, reference):
    found = data(client.call("search_documents", {"query": QUESTION, "k": 3}))
    expected = [Source.from_hit(n, hit) for n, hit in enumerate(reference.retrieve(QUESTION, k=3), start=1)]
    assert found["collection"] == "default" and found["query"] == QUESTION
    assert [c["rank"] for c in found["chunks"]] == [1, 2, 3]
    assert [(c["source"], c["text"], c["section"], c["score"]) for c in found["chunks"]] == \
        [(s.source, s.text, s.section, s.score) for s in expected]
    assert found["chunks"][0]["source"] == "vae.md" and found["chunks"][0]["id"]


@pytest.mark.parametrize(("question", "source", "locator", "location"), [
    ("How many crates of Velvet Pippins were picked in 2019?", "orchard_survey.pdf", {}, "page 2"),
    ("How many longlines does the Saltmere kelp farm use?", "kelp_farm.pptx", {"slide": 2}, "slide 2"),
    ("What did hull paint cost in 2021?", "ferry_budget.xlsx", {"sheet": "Maintenance"}, "sheet Maintenance"),
])
def test_chunks_carry_their_page_slide_or_sheet(client, question, source, locator, location):
    top = data(client.call("search_documents", {"query": question, "collection": "fixtures", "k": 1}))["chunks"][0]
    assert top["source"] == source
    assert top["locator"] == locator and top["location"].startswith(location)
    if source.endswith(".pdf"):
        assert top["page"] == 2


def test_ask_gives_the_cited_answer_of_the_python_api_and_reports_progress(client, reference):
    progress: list = []
    result = data(client.call("ask", {"question": QUESTION}, progress=progress))
    expected = reference.ask(QUESTION)
    assert result["answer"] == expected.text and "[1]" in result["answer"]
    assert result["refused"] is False and result["collection"] == "default"
    assert [s["n"] for s in result["sources"]] == list(range(1, len(expected.sources) + 1))
    assert [(s["source"], s["cited"]) for s in result["sources"]] == [(s.source, s.cited) for s in expected.sources]
    cited = result["sources"][0]
    assert cited["source"] == "vae.md" and cited["cited"] and cited["quotes"]
    assert all(quote in cited["text"] for quote in cited["quotes"])
    assert progress and progress[0] == (0, None, "searching the documents")
    assert progress[-1][2] == "answered" and progress[-1][0] == progress[-1][1]
    assert [p for p, _, _ in progress] == sorted(p for p, _, _ in progress)


def test_ask_refuses_when_the_documents_do_not_say(client, reference):
    question = "Who won the 1998 FIFA World Cup final?"
    result = data(client.call("ask", {"question": question}))
    assert result["refused"] is True and result["answer"] == REFUSAL and result["sources"] == []
    assert reference.ask(question).refused


def test_a_follow_up_is_read_in_the_light_of_the_history(client, reference):
    history = [{"role": "user", "content": "What is a VAE?"},
               {"role": "assistant", "content": reference.ask("What is a VAE?").text}]
    result = data(client.call("ask", {"question": "Who introduced it?", "history": history}))
    expected = reference.ask("Who introduced it?", history)
    assert "VAE" in result["standalone_question"]
    assert result["standalone_question"] == expected.standalone_question
    assert result["answer"] == expected.text and result["sources"][0]["source"] == "vae.md"


def test_ask_answers_from_a_named_collection(client):
    result = data(client.call("ask", {"question": "Who invented the zorbulator?", "collection": "fixtures"}))
    assert "Ada Quill" in result["answer"] and result["collection"] == "fixtures"
    assert result["sources"][0]["source"] == "odd_machines.md" and result["sources"][0]["cited"]


def test_collections_and_documents_are_listed(client, reference):
    rows = {row["name"]: row for row in data(client.call("list_collections"))["collections"]}
    assert set(rows) == {"default", "fixtures", "small"}
    assert rows["default"]["default"] is True and rows["fixtures"]["default"] is False
    assert rows["default"]["chunks"] == reference.store().count() and rows["small"]["embedder"] == "fake-hash-32|dim=32"
    documents = data(client.call("list_documents", {"collection": "fixtures"}))
    assert documents["collection"] == "fixtures"
    assert [d["source"] for d in documents["documents"]] == sorted(f.name for f in FILES)
    assert all(d["chunks"] > 0 and d["path"].startswith("/") for d in documents["documents"])
    assert "vae.md" in [d["source"] for d in data(client.call("list_documents"))["documents"]]


@pytest.mark.parametrize(("tool", "arguments", "reason"), [
    ("search_documents", {}, "query\n  Field required"),
    ("search_documents", {"query": "VAE", "k": 0}, "greater than or equal to 1"),
    ("search_documents", {"query": ["VAE"]}, "valid string"),
    ("search_documents", {"query": "   "}, "the query is empty"),
    ("search_documents", {"query": "VAE", "collection": "nope"},
     "unknown collection 'nope' (collections: 'default', 'fixtures', 'small'): list_collections lists them"),
    ("search_documents", {"query": "zorbulator", "collection": "small"},
     ("collection 'small' was built with embedder 'fake-hash-32|dim=32', but the configured embedder is "
      "'fake-hash-64|dim=64'. Use the original embedder")),
    ("ask", {"question": "What is a VAE?", "history": [{"role": "robot", "content": "hi"}]}, "history.0.role"),
    ("ask", {"question": ""}, "the question is empty"),
    ("list_documents", {"collection": "nope"}, "unknown collection 'nope'"),
    ("ingest_files", {"paths": ["/etc"]}, "Unknown tool: ingest_files"),
    ("delete_document", {"source": "vae.md"}, "Unknown tool: delete_document"),
])
def test_a_bad_call_is_a_tool_error_with_its_reason_and_the_server_goes_on(client, tool, arguments, reason):
    assert reason in error_text(client.call(tool, arguments))
    assert data(client.call("search_documents", {"query": QUESTION, "k": 1}))["chunks"][0]["source"] == "vae.md"


def test_several_calls_in_flight_at_once_each_get_their_own_answer(client, reference):
    questions = ["What is a VAE?", "What is a GAN?", "What is a diffusion model?"]
    calls = [("ask", {"question": q}) for q in questions] + [("search_documents", {"query": q, "k": 2})
                                                              for q in questions]
    results = [data(r) for r in client.gather(calls)]
    for question, answer in zip(questions, results[:3]):
        assert answer["answer"] == reference.ask(question).text
    for question, found in zip(questions, results[3:]):
        assert [c["text"] for c in found["chunks"]] == [h.text for h in reference.retrieve(question, k=2)]


def test_a_store_that_is_down_is_a_tool_error_naming_it_and_the_fix(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    client = Client(stdio_transport(tmp_path / "home", RAG_STORE__URL=url))
    try:
        for tool, arguments in (("list_collections", {}), ("search_documents", {"query": QUESTION}),
                                ("ask", {"question": QUESTION})):
            reason = error_text(client.call(tool, arguments))
            assert f"the Chroma server at {url} is unreachable" in reason and "RAG_STORE__URL" in reason, tool
    finally:
        client.close()


@pytest.mark.slow
def test_models_that_fail_to_load_make_each_call_an_error_saying_why(tmp_path):
    client = Client(stdio_transport(tmp_path / "home", profile=None, RAG_EMBEDDER__MODEL=str(tmp_path / "no-model"),
                                    RAG_EMBEDDER__CACHE_DIR=str(tmp_path / "cache"),  # not the user's cache
                                    RAG_LLM__MODE="scripted"))
    try:
        assert set(client.tools()) == READ_TOOLS  # listing needs no model
        for _ in range(2):  # and the server stays up
            reason = error_text(client.call("search_documents", {"query": QUESTION}))
            assert "the models failed to load" in reason and "no-model" in reason
    finally:
        client.close()


def test_rag_mcp_help_says_what_it_serves(tmp_path):
    out = rag_cli(tmp_path / "home", "mcp", "--help")
    for name in (*READ_TOOLS, "ingest_files", "delete_document", "stdio", "--allow-writes", "--write-root",
                 "RAG_MCP__WRITE_ROOTS", "RAG_HOME", "/mcp"):
        assert name in out, name

"""`rag mcp` with the real default models (packaged MiniLM embedder, SmolLM2 with the trained reader), spawned by the
SDK's stdio client: the documents are added through `ingest_files`, then `search_documents` and `ask` find and cite
the right file."""

from __future__ import annotations

import pytest
from mcp_support import Client, data, stdio_transport

pytestmark = pytest.mark.integration

DOCS = {
    "volcanoes.md": "# Volcanoes\n\nMount Etna is an active volcano on the east coast of Sicily. It is the tallest "
                    "active volcano in Europe outside the Caucasus, about 3,357 metres high.\n",
    "trains.md": "# Trains\n\nThe Shinkansen is a network of high-speed railway lines in Japan. The first line opened "
                 "in 1964 between Tokyo and Osaka.\n",
}


def test_real_models_ingest_search_and_answer_with_citations(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, text in DOCS.items():
        (docs / name).write_text(text, encoding="utf-8")
    client = Client(stdio_transport(tmp_path / "home", "--collection", "tiny", "--allow-writes", "--write-root",
                                    str(docs), profile=None), timeout=600)
    try:
        ingested = data(client.call("ingest_files", {"paths": [str(docs)]}))
        assert ingested["files"]["added"] == 2 and not ingested["failed"]
        top = data(client.call("search_documents", {"query": "high-speed railway in Japan", "k": 1}))["chunks"][0]
        assert top["source"] == "trains.md" and "Shinkansen" in top["text"]
        progress: list = []
        answer = data(client.call("ask", {"question": "In which year did the first Shinkansen line open?"},
                                  progress=progress))
        assert answer["refused"] is False and "1964" in answer["answer"]
        cited = [s for s in answer["sources"] if s["cited"]]
        assert [s["source"] for s in cited] == ["trains.md"] and f"[{cited[0]['n']}]" in answer["answer"]
        assert any("1964" in quote for quote in cited[0]["quotes"])
        assert progress[0][2] == "searching the documents" and progress[-1][2] == "answered"
    finally:
        client.close()

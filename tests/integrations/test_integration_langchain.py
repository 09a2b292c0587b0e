"""End to end with the real default models: a LangChain TextLoader → ingest_documents → as_runnable() cites the file."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration

DOCS = {
    "volcanoes.txt": "Mount Etna is an active volcano on the east coast of Sicily. It is the tallest active volcano in "
                     "Europe outside the Caucasus, about 3,357 metres high.\n",
    "bread.txt": "Sourdough bread is leavened by a starter of wild yeast and lactic acid bacteria. The dough usually "
                 "rises for eight to twelve hours before baking.\n",
    "trains.txt": "The Shinkansen is a network of high-speed railway lines in Japan. The first line opened in 1964 "
                  "between Tokyo and Osaka.\n",
}


def test_a_langchain_loader_feeds_ingest_documents_and_the_runnable_cites_the_right_file(tmp_path):
    from langchain_community.document_loaders import TextLoader

    from rag_app.api import RAG
    from rag_app.settings import Settings

    docs = []
    for name, text in DOCS.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
        docs.extend(TextLoader(str(tmp_path / name), encoding="utf-8").load())
    rag = RAG(Settings(home=tmp_path / "home"))
    summary = rag.ingest_documents(docs)
    assert summary.ok and summary.files.added == 3
    assert rag.ingest_documents(docs).chunks_written == 0

    answer = rag.as_runnable().invoke("In which year did the first Shinkansen line open?")
    assert not answer.refused and "1964" in answer.short
    assert [s.source for s in answer.cited_sources] == [str(tmp_path / "trains.txt")]
    assert answer.model.startswith("SmolLM2-135M-Instruct+reader@")  # the shipped trained reader
    [top] = rag.as_retriever(k=1).invoke("What leavens sourdough bread?")
    assert top.metadata["source"] == str(tmp_path / "bread.txt")

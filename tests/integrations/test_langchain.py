"""Our parts as LangChain objects, driven by real LangChain (LCEL, fake chat models, InMemoryVectorStore)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from langchain_core.documents import Document
from langchain_core.language_models import FakeListChatModel, GenericFakeChatModel, ParrotFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import Runnable, RunnableLambda, RunnablePassthrough

from tests.fixtures.expected import EXPECTED

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "docs"
PROMPT = ChatPromptTemplate.from_messages([
    ("system", "Answer from the context only.\n\n{context}"),
    ("human", "{question}"),
])


def format_docs(docs: list[Document]) -> str:
    return "\n\n".join(f"[{d.metadata['source']}] {d.page_content}" for d in docs)


@pytest.fixture
def corpus_rag(rag, tmp_path):
    docs = tmp_path / "docs"
    shutil.copytree(FIXTURES, docs)
    assert rag.ingest([docs]).ok
    return rag


# -- as_retriever ------------------------------------------------------------------------------------------------------
def test_the_retriever_in_an_lcel_chain_feeds_the_expected_documents(corpus_rag):
    retriever = corpus_rag.as_retriever(k=3)
    assert isinstance(retriever, BaseRetriever)
    expected = EXPECTED["odd_machines.md"]
    setup = {"context": retriever, "question": RunnablePassthrough()}

    context = setup | RunnableLambda(lambda x: x["context"])
    docs = context.invoke(expected["question"])
    top = docs[0]
    assert isinstance(top, Document) and len(docs) == 3
    assert top.metadata["source"] == "odd_machines.md" and expected["phrase"] in top.page_content
    assert top.metadata["title"] == expected["title"] and top.metadata["section"] == expected["section"]
    assert top.metadata["lines"] and top.metadata["page"] is None and top.id == top.metadata["chunk_id"]
    assert top.metadata["score"] >= docs[1].metadata["score"]
    assert not {"file_hash", "chunking", "ingested_at", "n_tokens"} & top.metadata.keys()

    # The full chain with a fake chat model: the prompt it receives holds the retrieved source.
    parrot = {"context": retriever | format_docs, "question": RunnablePassthrough()} | PROMPT | ParrotFakeChatModel()
    echoed = parrot.invoke(expected["question"])
    assert isinstance(echoed, HumanMessage) and echoed.content == expected["question"]
    prompt = ({"context": retriever | format_docs, "question": RunnablePassthrough()} | PROMPT).invoke(expected["question"])
    assert "[odd_machines.md] " in prompt.to_messages()[0].content and expected["phrase"] in prompt.to_string()

    chain = {"context": retriever | format_docs, "question": RunnablePassthrough()} | PROMPT | GenericFakeChatModel(
        messages=iter(["Ada Quill invented it [odd_machines.md]."]))
    assert chain.invoke(expected["question"]).content == "Ada Quill invented it [odd_machines.md]."


def test_the_retriever_works_async_and_filters_by_source(corpus_rag):
    expected = EXPECTED["lantern_society.txt"]
    docs = asyncio.run(corpus_rag.as_retriever(k=2).ainvoke(expected["question"]))
    assert docs[0].metadata["source"] == "lantern_society.txt"
    only_pdf = corpus_rag.as_retriever(k=5, source_glob="*.pdf").invoke(expected["question"])
    assert only_pdf and {d.metadata["source"] for d in only_pdf} == {"orchard_survey.pdf"}
    assert only_pdf[0].metadata["page"] in (1, 2)
    batch = corpus_rag.as_retriever(k=1).batch([EXPECTED[name]["question"] for name in ("odd_machines.md",
                                                                                       "lighthouses.csv")])
    assert [docs[0].metadata["source"] for docs in batch] == ["odd_machines.md", "lighthouses.csv"]


# -- as_runnable -------------------------------------------------------------------------------------------------------
def test_the_runnable_streams_pieces_then_the_answer(corpus_rag):
    from rag_app.services.answer import Answer

    runnable = corpus_rag.as_runnable()
    assert isinstance(runnable, Runnable)
    items = list(runnable.stream(EXPECTED["odd_machines.md"]["question"]))
    assert len(items) >= 2 and all(isinstance(piece, str) for piece in items[:-1])
    answer = items[-1]
    assert isinstance(answer, Answer) and not answer.refused
    assert [s.source for s in answer.cited_sources] == ["odd_machines.md"]
    assert "".join(items[:-1]).strip() == answer.text


def test_the_runnable_batches_and_answers_async(corpus_rag):
    names = ["odd_machines.md", "lantern_society.txt", "bramblewood_bees.ipynb"]
    runnable = corpus_rag.as_runnable()
    answers = runnable.batch([EXPECTED[name]["question"] for name in names])
    assert [a.cited_sources[0].source for a in answers] == names
    answer = asyncio.run(runnable.ainvoke({"question": EXPECTED["marmot_station.html"]["question"]}))
    assert answer.cited_sources[0].source == "marmot_station.html"

    async def pieces():
        return [item async for item in runnable.astream(EXPECTED["odd_machines.md"]["question"])]

    streamed = asyncio.run(pieces())
    assert all(isinstance(p, str) for p in streamed[:-1]) and streamed[-1].cited_sources[0].source == "odd_machines.md"


def test_the_runnable_composes_and_takes_history_as_messages(corpus_rag):
    runnable = corpus_rag.as_runnable(output="dict")
    history = [HumanMessage("Tell me about the zorbulator."), AIMessage("It is an odd machine.")]
    out = runnable.invoke({"question": "Who invented it?", "history": history})
    assert out["standalone_question"] != "Who invented it?" and "zorbulator" in out["standalone_question"]
    assert out["sources"][0]["source"] == "odd_machines.md" and "Ada Quill" in out["answer"]

    as_messages = runnable.invoke([*history, HumanMessage("Who invented it?")])
    assert as_messages["answer"] == out["answer"]
    chain = RunnableLambda(lambda q: {"question": q}) | runnable | RunnableLambda(lambda d: d["answer"])
    assert chain.invoke(EXPECTED["odd_machines.md"]["question"]) == out["answer"]


def test_the_runnable_with_message_history_uses_earlier_turns(corpus_rag):
    from langchain_core.chat_history import InMemoryChatMessageHistory
    from langchain_core.runnables.history import RunnableWithMessageHistory

    sessions: dict[str, InMemoryChatMessageHistory] = {}
    chat = RunnableWithMessageHistory(
        corpus_rag.as_runnable(output="dict"),
        lambda session_id: sessions.setdefault(session_id, InMemoryChatMessageHistory()),
        input_messages_key="question", history_messages_key="history", output_messages_key="answer")
    config = {"configurable": {"session_id": "s1"}}
    first = chat.invoke({"question": "Tell me about the zorbulator."}, config=config)
    assert set(first) >= {"answer", "refused", "sources", "standalone_question"}
    streamed = list(chat.stream({"question": "Who invented it?"}, config=config))
    final = streamed[-1]
    assert all(isinstance(p, str) for p in streamed[:-1]) and "zorbulator" in final["standalone_question"]
    assert "Ada Quill" in final["answer"]
    stored = sessions["s1"].messages
    assert [m.type for m in stored] == ["human", "ai", "human", "ai"] and stored[-1].content == final["answer"]


def test_the_runnable_refuses_what_the_documents_do_not_say(corpus_rag):
    answer = corpus_rag.as_runnable().invoke("Who won the 1998 FIFA World Cup final?")
    assert answer.refused and answer.sources == []


def test_the_runnable_rejects_input_it_cannot_read(corpus_rag):
    from rag_app.errors import RagError

    with pytest.raises(RagError, match="question"):
        corpus_rag.as_runnable().invoke({"query": "no question key"})
    with pytest.raises(RagError, match="output"):
        corpus_rag.as_runnable(output="text")


# -- as_embeddings -----------------------------------------------------------------------------------------------------
def test_our_embeddings_in_an_in_memory_vector_store_find_the_right_document(rag):
    from langchain_core.vectorstores import InMemoryVectorStore

    embeddings = rag.as_embeddings()
    texts = {name: facts["phrase"] for name, facts in EXPECTED.items()}
    store = InMemoryVectorStore.from_texts(list(texts.values()), embedding=embeddings,
                                           metadatas=[{"source": name} for name in texts])
    for name in ("odd_machines.md", "lantern_society.txt", "orbit_tools.py"):
        [hit] = store.similarity_search(EXPECTED[name]["question"], k=1)
        assert hit.metadata["source"] == name
    vector = embeddings.embed_query("brass lanterns")
    assert isinstance(vector, list) and isinstance(vector[0], float) and len(vector) == rag.embedder.dim
    assert abs(sum(v * v for v in vector) - 1.0) < 1e-5
    assert asyncio.run(embeddings.aembed_documents(["a", "b"])) == embeddings.embed_documents(["a", "b"])


# -- a chat model in a chain that ends with our answer -------------------------------------------------------------------
def test_a_chat_model_can_rewrite_the_question_before_our_runnable(corpus_rag):
    """LCEL on the way in: a (fake) chat model turns a keyword query into a question that our runnable answers."""
    rewrite = FakeListChatModel(responses=[EXPECTED["lantern_society.txt"]["question"]])
    chain = rewrite | RunnableLambda(lambda message: message.content) | corpus_rag.as_runnable()
    answer = chain.invoke("lantern society schedule")
    assert answer.cited_sources[0].source == "lantern_society.txt"


def test_importing_rag_app_does_not_import_langchain():
    code = ("import sys, rag_app; from rag_app.api import RAG; "
            "assert not [m for m in sys.modules if m.startswith('langchain')], 'langchain imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])

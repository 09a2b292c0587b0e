"""`RAG(llm=<LangChain chat model>)`: the LM adapter, with LangChain's own fake chat models."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from langchain_core.language_models import FakeListChatModel, FakeListLLM, GenericFakeChatModel

from tests.fixtures.expected import EXPECTED

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "docs"
QUESTION = EXPECTED["odd_machines.md"]["question"]


@pytest.fixture
def docs(tmp_path):
    folder = tmp_path / "docs"
    shutil.copytree(FIXTURES, folder)
    return folder


def chat_rag(test_settings, docs, model, **overrides):
    from rag_app.api import RAG

    rag = RAG(test_settings, llm=model, **overrides)
    assert rag.ingest([docs]).ok
    return rag


def test_a_chat_model_answers_with_citations_through_the_generative_path(test_settings, docs):
    from rag_app.components.langchain_llm import LangChainChatLLM

    model = GenericFakeChatModel(messages=iter(["The zorbulator was invented in 1987 by Ada Quill [1]."]))
    rag = chat_rag(test_settings, docs, model)
    assert isinstance(rag.llm, LangChainChatLLM) and rag.llm.model is model
    answer = rag.ask(QUESTION)
    assert not answer.refused and not answer.fallback
    assert answer.text == "The zorbulator was invented in 1987 by Ada Quill [1]."
    assert [s.source for s in answer.cited_sources] == ["odd_machines.md"]
    assert answer.model == "langchain:GenericFakeChatModel" and answer.extra["strategy"] == "generative"


def test_a_chat_model_that_does_not_know_is_a_refusal(test_settings, docs):
    rag = chat_rag(test_settings, docs, GenericFakeChatModel(messages=iter(["I don't know."])))
    answer = rag.ask(QUESTION)
    assert answer.refused and answer.sources == [] and answer.text == "I don't know: the documents don't say."


def test_an_unsupported_reply_becomes_a_quote_of_the_evidence(test_settings, docs):
    rag = chat_rag(test_settings, docs, FakeListChatModel(responses=["It was built by Martians on the Moon [1]."]))
    answer = rag.ask(QUESTION)
    assert answer.fallback and EXPECTED["odd_machines.md"]["phrase"] in answer.text
    assert answer.cited_sources[0].source == "odd_machines.md"


def test_the_runnable_streams_a_chat_models_pieces(test_settings, docs):
    reply = "Ada Quill invented the zorbulator in 1987 [1]."
    rag = chat_rag(test_settings, docs, GenericFakeChatModel(messages=iter([reply])))
    items = list(rag.as_runnable().stream(QUESTION))
    assert len(items) > 3 and "".join(items[:-1]) == reply and items[-1].text == reply


def test_strategy_none_follows_the_settings(test_settings, docs):
    from rag_app.components.langchain_llm import LangChainChatLLM

    model = FakeListChatModel(responses=["Ada Quill"])  # extractive: the reply is snapped onto the evidence
    rag = chat_rag(test_settings, docs, LangChainChatLLM(model, strategy=None))
    answer = rag.ask(QUESTION)
    assert answer.extra["strategy"] == "extractive" and answer.short == "Ada Quill"
    assert answer.cited_sources[0].source == "odd_machines.md"


def test_stop_strings_prefix_and_completion_models():
    from rag_app.components.langchain_llm import LangChainChatLLM

    llm = LangChainChatLLM(GenericFakeChatModel(messages=iter(["Answer: Paris is big.\nSecond line"])))
    assert llm.generate([{"role": "user", "content": "?"}], stop=["\n"], prefix="Answer:") == "Paris is big."
    completion = LangChainChatLLM(FakeListLLM(responses=["plain text reply"]), name="fake-llm")
    assert completion.generate([{"role": "user", "content": "?"}]) == "plain text reply"
    assert completion.name == "fake-llm" and completion.count_tokens("one two") == 2


def test_a_model_name_is_read_from_the_model():
    from rag_app.components.langchain_llm import default_name

    class Named:
        model = "llama3.2"

        def stream(self, messages, **kwargs):
            yield from ()

    assert default_name(Named()) == "langchain:Named:llama3.2"


def test_objects_that_are_not_models_are_refused():
    from rag_app.components.langchain_llm import LangChainChatLLM
    from rag_app.errors import RagError

    with pytest.raises(RagError, match="chat model"):
        LangChainChatLLM(object())
    with pytest.raises(RagError, match="strategy"):
        LangChainChatLLM(FakeListLLM(responses=["x"]), strategy="clever")

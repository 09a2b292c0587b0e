"""The answer service with a trained reader: the reader's own no-answer choice refuses, a span it prefers answers
with its citation, the prompt is the one the adapter was trained on, and the card's calibrated gate applies."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag_app.components.embedder import FakeEmbedder
from rag_app.components.llm import ScriptedLLM
from rag_app.components.reader_adapter import ReaderAdapter
from rag_app.errors import RagError
from rag_app.services import answer as answer_module
from rag_app.services.answer import REFUSAL, AnswerService
from rag_app.services.extractive import SpanCandidate
from rag_app.services.prompting import NO_ANSWER, READER_SYSTEM
from tests.services.test_answer import HITS, ListRetriever


class ReaderLLM(ScriptedLLM):
    """The scripted LM posing as one with logits and a trained reader adapter (its scoring is scripted below)."""

    exposes_logits = True

    def __init__(self, decision: dict | None = None):
        super().__init__()
        self.reader = ReaderAdapter(path=Path("adapter"), card={"decision": decision or {}})


def scripted_reading(monkeypatch, span_logprob: float, no_answer_logprob: float, calls: list):
    def fake(llm, messages, evidence, **kwargs):
        calls.append((messages, list(evidence), kwargs))
        span = next(t for t in evidence if "Paris" in t)
        return sorted([SpanCandidate("Paris", evidence.index(span), 1, span_logprob, 0.0, span_logprob),
                       SpanCandidate(NO_ANSWER, -1, 1, no_answer_logprob, 0.0, no_answer_logprob, -1)],
                      key=lambda c: -c.score)

    monkeypatch.setattr(answer_module, "span_candidates", fake)


def ask(test_settings, llm, question="What is the capital of France?", **answer):
    settings = test_settings.with_overrides(**{f"answer.{k}": v for k, v in answer.items()})
    return AnswerService(settings, ListRetriever(HITS), llm, FakeEmbedder()).ask(question)


def test_a_reader_that_prefers_no_answer_refuses(test_settings, monkeypatch):
    calls: list = []
    scripted_reading(monkeypatch, span_logprob=-3.0, no_answer_logprob=-0.5, calls=calls)
    answer = ask(test_settings, ReaderLLM({"margin": 0.0}), min_relevance=0.0)
    assert answer.refused and answer.text == REFUSAL and answer.sources == []
    assert answer.extra["reader"] == "trained" and answer.extra["span"]["abstain"] == pytest.approx(2.5, abs=1e-3)


def test_a_reader_that_prefers_a_span_answers_with_it_and_its_citation(test_settings, monkeypatch):
    calls: list = []
    scripted_reading(monkeypatch, span_logprob=-0.2, no_answer_logprob=-4.0, calls=calls)
    answer = ask(test_settings, ReaderLLM({"margin": 0.0}), min_relevance=0.0)
    assert not answer.refused and answer.short == "Paris" and answer.text.startswith("Paris [2].")
    assert [s.n for s in answer.cited_sources] == [2]
    # The trained prompt: the reader's rules (with the no-answer reply), no few-shot turns, the evidence as sources.
    messages, _evidence, kwargs = calls[0]
    assert [m["role"] for m in messages] == ["system", "user"] and messages[0]["content"] == READER_SYSTEM
    assert "<source id=2" in messages[1]["content"] and kwargs["no_answer"] == NO_ANSWER


def test_the_margin_and_the_relevance_weight_come_from_the_card(test_settings, monkeypatch):
    calls: list = []
    scripted_reading(monkeypatch, span_logprob=-3.0, no_answer_logprob=-0.5, calls=calls)
    # Preferring no answer by 2.5 nats is not enough against a margin of 3.
    assert not ask(test_settings, ReaderLLM({"margin": 3.0}), min_relevance=0.0).refused
    # A strongly relevant retrieval pulls the other way: a large relevance weight keeps the answer.
    assert not ask(test_settings, ReaderLLM({"margin": 0.0, "relevance_weight": 100.0}), min_relevance=0.0).refused


def test_the_cards_gate_applies_when_min_relevance_is_unset(test_settings, monkeypatch):
    calls: list = []
    scripted_reading(monkeypatch, span_logprob=-0.2, no_answer_logprob=-4.0, calls=calls)
    assert ask(test_settings, ReaderLLM({"min_relevance": 0.999999})).refused
    assert calls == []  # refused before reading
    assert not ask(test_settings, ReaderLLM({"min_relevance": 0.0})).refused


def test_a_context_window_too_small_for_any_evidence_is_a_rag_error(test_settings):
    llm = ScriptedLLM(context_tokens=40)
    settings = test_settings.with_overrides(**{"llm.context_tokens": 256, "answer.min_relevance": 0.0})
    service = AnswerService(settings, ListRetriever(HITS), llm, FakeEmbedder())
    with pytest.raises(RagError, match="context window"):
        service.ask("What is the capital of France?")


def scripted_spans(monkeypatch, spans: dict[str, float], no_answer_logprob: float = -9.0):
    """The reader's candidates: each span (found in the evidence) with its log-probability."""
    def fake(llm, messages, evidence, **kwargs):
        found = [SpanCandidate(text, next(k for k, t in enumerate(evidence) if text in t), len(text.split()), lp,
                               0.0, lp) for text, lp in spans.items()]
        found.append(SpanCandidate(NO_ANSWER, -1, 1, no_answer_logprob, 0.0, no_answer_logprob, -1))
        return sorted(found, key=lambda c: -c.score)

    monkeypatch.setattr(answer_module, "span_candidates", fake)


def reading_llm(reading: dict | None) -> ReaderLLM:
    llm = ReaderLLM({"margin": 0.0})
    llm.reader = ReaderAdapter(path=Path("adapter"), card={"decision": {"margin": 0.0}, **({"reading": reading}
                                                                                          if reading else {})})
    return llm


def test_the_cards_reading_weights_choose_among_the_likeliest_spans(test_settings, monkeypatch):
    # The likeliest span repeats the question ("France"); the answer is the next one.
    scripted_spans(monkeypatch, {"France": -0.3, "Paris": -0.6}, no_answer_logprob=-1.0)
    plain = ask(test_settings, reading_llm(None), min_relevance=0.0)
    # "France" answers nothing the question asks: refused, rather than quoting a sentence that may not answer
    assert plain.refused and plain.text == REFUSAL and plain.sources == []
    shaped = ask(test_settings, reading_llm({"asked_weight": -2.0}), min_relevance=0.0)
    assert shaped.short == "Paris" and shaped.text.startswith("Paris [2].")
    # The margin rule still reads the likeliest span: log p(no answer) - log p("France").
    assert shaped.extra["span"]["likeliest"] == "France"
    assert shaped.extra["span"]["abstain"] == pytest.approx(-0.7, abs=1e-3)
    # What the choice was made from is kept for refitting the weights.
    recorded = {c["text"]: c for c in shaped.extra["span"]["candidates"]}
    assert recorded["France"]["asked"] == 1.0 and recorded["Paris"]["asked"] == 0.0

"""Requests ("List …", "Describe …", "Can you explain …") are answered like the questions they stand for: searched
and judged by their topic, explained, and not refused because a span reader finds no phrase that answers them."""

from __future__ import annotations

import pytest

from rag_app.components.embedder import FakeEmbedder
from rag_app.services import answer as answer_module
from rag_app.services.answer import REFUSAL, AnswerService
from rag_app.services.extractive import SpanCandidate
from rag_app.services.prompting import NO_ANSWER
from rag_app.services.questions import request_topic, wants_explanation
from tests.services.test_answer import HITS, ListRetriever, hit
from tests.services.test_trained_reader import ReaderLLM


@pytest.mark.parametrize("request_text, topic", [
    ("List the main components of a RAG pipeline.", "the main components of a RAG pipeline"),
    ("Describe the reparameterization trick.", "the reparameterization trick"),
    ("Can you explain what a GAN is?", "what a GAN is"),
    ("could you please summarise how VAEs are trained", "how VAEs are trained"),
    ("Tell me about mode collapse!", "mode collapse"),
    ("Give me a brief overview of diffusion models.", "diffusion models"),
    ("Please list: the steps of DDPM training", "the steps of DDPM training"),
    ("Please, describe the ELBO", "the ELBO"),
    ("Can you tell me how diffusion works?", "how diffusion works"),
])
def test_a_request_is_searched_by_its_topic_and_explained(request_text, topic):
    assert request_topic(request_text) == topic
    assert wants_explanation(request_text)


@pytest.mark.parametrize("question", [
    "What is the capital of France?", "Who named the GAN?", "Listing files is slow: why?", "Explain.",
    "Describe?", "Named entities are what?", "List comprehension in Python: how?", "Name of the author?",
    "Name-dropping in papers: why?", "Describe-based matching?", "Outline of the paper?",
])
def test_a_question_that_is_no_request_is_searched_as_asked(question):
    assert request_topic(question) == question


@pytest.mark.parametrize("request_text, topic", [
    ("Could you tell me the learning rate of the VAE?", "the learning rate of the VAE"),
    ("Can you tell me how many latent codes the VAE has?", "how many latent codes the VAE has"),
    ("Name the author of the VAE paper.", "the author of the VAE paper"),
    ("Can you explain when GANs were introduced?", "when GANs were introduced"),
])
def test_a_request_for_a_fact_is_searched_by_its_topic_and_answered_short(request_text, topic):
    assert request_topic(request_text) == topic
    assert not wants_explanation(request_text)


VAE_HITS = [
    hit("notes/vae.md", "A variational autoencoder maps each input to a distribution over latent codes. "
                        "The variational autoencoder decodes latent codes back to inputs. "
                        "Training the variational autoencoder maximises the evidence lower bound."),
    *HITS,
]


def no_answer_preferred(monkeypatch):
    """The trained reader's scoring, scripted: no answer is far likelier than any span."""
    def fake(llm, messages, evidence, **kwargs):
        return [SpanCandidate(NO_ANSWER, -1, 1, -0.1, 0.0, -0.1, -1),
                SpanCandidate(evidence[0].split()[0], 0, 1, -6.0, 0.0, -6.0)]
    monkeypatch.setattr(answer_module, "span_candidates", fake)


def ask(test_settings, question, hits):
    retriever = ListRetriever(hits)
    settings = test_settings.with_overrides(**{"answer.min_relevance": 0.0})
    return AnswerService(settings, retriever, ReaderLLM({"margin": 0.0}), FakeEmbedder()).ask(question), retriever


def test_a_request_the_reader_finds_no_span_for_is_explained_not_refused(test_settings, monkeypatch):
    no_answer_preferred(monkeypatch)
    answer, retriever = ask(test_settings, "Describe the variational autoencoder.", VAE_HITS)
    assert retriever.queries == ["the variational autoencoder"]
    assert not answer.refused and answer.extra["form"] == "explain" and answer.extra["abstained"]
    assert answer.text.count("[1]") >= 2 and "variational autoencoder" in answer.text
    assert answer.cited_sources and all(s.cited_spans for s in answer.cited_sources)


@pytest.mark.parametrize("question", [
    "What does the variational autoencoder maximise?",
    "Could you tell me the learning rate of the variational autoencoder?",
    "Name the author of the variational autoencoder.",
])
def test_a_factoid_question_or_request_the_reader_finds_no_span_for_is_still_refused(test_settings, monkeypatch,
                                                                                      question):
    no_answer_preferred(monkeypatch)
    answer, _ = ask(test_settings, question, VAE_HITS)
    assert answer.refused and answer.text == REFUSAL and answer.sources == []


def test_a_request_with_nothing_to_explain_it_is_refused_when_the_reader_finds_no_span(test_settings, monkeypatch):
    no_answer_preferred(monkeypatch)
    answer, _ = ask(test_settings, "Describe the Moon's orbit.", [hit("notes/space.md", "The Moon orbits the Earth.")])
    assert answer.refused and answer.text == REFUSAL

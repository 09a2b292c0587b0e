"""Extractive answers: the span constraint over an LM with known logits, snapping, answer types, cited spans."""

from __future__ import annotations

import re
from contextlib import contextmanager

import numpy as np
import pytest

from rag_app.components.embedder import FakeEmbedder
from rag_app.components.llm import LLM, Continuations, ScriptedLLM
from rag_app.components.store import Hit
from rag_app.services.answer import AnswerService
from rag_app.services.extractive import (
    SpanConstraint,
    answer_type,
    answers_something,
    clean_span,
    fits_answer_type,
    question_words,
    snap_to_evidence,
    stream_span,
)

class ListRetriever:  # same as test_answer.py
    def __init__(self, hits):
        self.hits = hits

    def retrieve(self, query, k=None, source_glob=None):
        return self.hits[: k or len(self.hits)]


def hit(source: str, text: str, score: float = 0.5) -> Hit:
    return Hit(id=f"{source}#0", text=text, metadata={"source": source, "title": source.rsplit("/", 1)[-1]},
               score=score)


HITS = [
    hit("notes/cooking.md", "Pasta is boiled in salted water for ten minutes. Drain it before serving."),
    hit("notes/geo.md", "The capital of France is Paris. Paris lies on the Seine river."),
    hit("notes/space.md", "The Moon orbits the Earth once every 27 days."),
]
EOS, NEWLINE = "</s>", "\n"


class LogitsLM(LLM):
    """A word-level fake LM that shows fixed logits: `scores` maps a token string ("Ġword", ".", "</s>") to its
    logit at every step (others get -10). Tokens are words ("Ġ" marks a space before), "." and ","."""

    exposes_logits = True

    def __init__(self, scores: dict[str, float], context_tokens: int = 4096):
        self.name = "logits-fake"
        self.context_window = context_tokens
        self.scores = scores
        self.vocab: list[str] = [EOS, NEWLINE]
        self.calls: list[list[dict]] = []

    def _id(self, token: str) -> int:
        if token not in self.vocab:
            self.vocab.append(token)
        return self.vocab.index(token)

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def stream(self, messages, max_new_tokens=96, temperature=0.0, stop=(), prefix=""):
        raise AssertionError("an LM with logits is decoded token by token")

    def tokenize(self, text):
        pieces = re.findall(r"\n|\s?[^\s.,]+|[.,]", text)
        return [self._id("Ġ" + p[1:] if p[:1] == " " else p) for p in pieces]

    def token_strings(self, ids):
        return [self.vocab[i] for i in ids]

    def stop_ids(self):
        return {0}

    def detokenize(self, ids):
        return "".join(self.vocab[i] for i in ids if i != 0).replace("Ġ", " ")

    @contextmanager
    def continuations(self, messages, prefix="", reserve=32):
        """The likelihood reader's view of the same fixed logits: every step has the same distribution."""
        self.calls.append(list(messages))
        for name in self.scores:
            self._id(name)
        logits = np.full(len(self.vocab), -10.0)
        for name, score in self.scores.items():
            logits[self.vocab.index(name)] = score
        logprobs = logits - np.logaddexp.reduce(logits)

        class Run(Continuations):
            first_logprobs = logprobs

            def score(self, continuations, end_ids):
                end = np.logaddexp.reduce(logprobs[sorted(end_ids)])
                return [(logprobs[list(c)], np.full(len(c), end)) for c in continuations]

        yield Run()

    def decode(self, messages, choose_next, max_new_tokens=96, prefix="", stop=()):
        self.calls.append(list(messages))
        for name in self.scores:
            self._id(name)
        generated: list[int] = []
        for _ in range(max_new_tokens):
            logits = np.full(len(self.vocab), -10.0, dtype=np.float32)
            for name, score in self.scores.items():
                logits[self.vocab.index(name)] = score
            token = choose_next(logits, generated)
            if token is None:
                return
            generated.append(token)
            yield self.vocab[token].replace("Ġ", " ")


EVIDENCE = ["The Denver Broncos won in 2016."]
CHAT = [{"role": "user", "content": "q"}]


def span(scores, evidence=EVIDENCE, **kwargs) -> str:
    return "".join(stream_span(LogitsLM(scores), CHAT, evidence, **kwargs)).strip()


def test_the_constraint_follows_the_logits_inside_the_evidence_only():
    # "PWNED" has the best logit but is not in the evidence; after "Broncos", ending beats "won".
    assert span({"ĠPWNED": 10, "ĠDenver": 5, "ĠBroncos": 4, EOS: 3, "Ġwon": 2}) == "Denver Broncos"


def test_the_span_never_starts_with_a_function_word():
    assert span({"Ġin": 20, "ĠDenver": 5, EOS: 9}) == "Denver"


def test_end_bias_favours_shorter_spans():
    scores = {"ĠDenver": 5, "ĠBroncos": 4, EOS: 3}
    assert span(scores) == "Denver Broncos"
    assert span(scores, end_bias=2.0) == "Denver"


def test_the_question_words_are_avoided_as_a_start():
    assert span({"ĠDenver": 5, "ĠBroncos": 4, EOS: 4.5}, avoid_start=["denver"]) == "Broncos"


def test_the_answer_type_steers_the_first_word():
    scores = {"ĠDenver": 4.5, "Ġ2016": 0.0, EOS: 3}
    assert span(scores) == "Denver"
    assert span(scores, answer_type="date") == "2016"


def test_a_span_does_not_cross_from_one_evidence_text_into_the_next():
    assert span({"ĠDenver": 5, "ĠBroncos": 4.9, EOS: 1}, evidence=["The Denver", "Broncos won"]) == "Denver"


def test_the_constraint_cannot_end_inside_a_number():
    llm = LogitsLM({"Ġ250": 5, ",": 4, "Ġ000": 1, EOS: 0})
    # "250" may not end before ",": the comma continues the number; after "250,", "000" is the only way on.
    assert "".join(stream_span(llm, CHAT, ["It cost 250,000 dollars."])).replace(" ", "") == "250,000"


def test_span_constraint_is_one_span_per_instance():
    llm = LogitsLM({"ĠDenver": 5, EOS: 9})
    constraint = SpanConstraint(llm, EVIDENCE)
    assert constraint.positions is None
    assert "".join(llm.decode(CHAT, constraint)).strip() == "Denver"
    assert constraint.positions == [1]


@pytest.mark.parametrize("reader", ["likelihood", "greedy"])
def test_the_service_answers_with_the_constrained_span(test_settings, reader):
    llm = LogitsLM({"ĠParis": 5, EOS: 4, "Ġlies": 1})
    svc = AnswerService(test_settings.with_overrides(**{"answer.reader": reader}), ListRetriever(HITS), llm,
                        FakeEmbedder())
    answer = svc.ask("What is the capital of France?")
    assert answer.short == "Paris" and answer.text.startswith("Paris [2].")
    assert llm.calls and answer.extra["reader"] == reader  # scored or decoded, not generated


def test_snap_to_evidence_returns_the_evidence_spelling():
    evidence = ["The Denver Broncos defeated the Carolina Panthers 24-10."]
    assert snap_to_evidence("the denver broncos won", evidence) == "The Denver Broncos"
    assert snap_to_evidence("PWNED", evidence) == ""


def test_fits_answer_type():
    assert fits_answer_type("1,889", "number") and fits_answer_type("three", "number")
    assert not fits_answer_type("chemical", "number")
    assert not fits_answer_type("1964", "number") and fits_answer_type("1964", "date")
    assert fits_answer_type("March", "date") and fits_answer_type("1960s", "date")
    assert fits_answer_type("Pierre", "name") and not fits_answer_type("energy", "name")
    assert fits_answer_type("anything", None)


def test_span_checks():
    assert clean_span(' (Paris, ') == "Paris"
    assert clean_span("A mixture of experts (MoE") == "A mixture of experts"
    assert clean_span("the VAE (a latent (variable) model") == "the VAE"
    assert clean_span("Denoising (DDPM) models") == "Denoising (DDPM) models"
    assert answers_something("Paris", "What is the capital of France?")
    assert not answers_something("capital of France", "What is the capital of France?")
    assert answer_type("How many moons does Mars have?") == "number"


# -- cited spans ------------------------------------------------------------------------------------------------------
def test_an_extractive_answer_marks_the_sentence_it_comes_from(test_settings):
    svc = AnswerService(test_settings, ListRetriever(HITS), ScriptedLLM(), FakeEmbedder())
    answer = svc.ask("What is the capital of France?")
    cited = answer.sources[1]
    assert [cited.text[b:e] for b, e in cited.cited_spans] == ["The capital of France is Paris."]
    assert all(s.cited_spans == [] for s in answer.sources if not s.cited)
    assert answer.to_dict()["sources"][1]["cited_spans"] == [(0, 31)]


def test_the_home_sentence_comes_first_and_the_best_ranked_one_second(test_settings):
    hits = [hit("notes/a.md", "Paris is the capital of France. It lies on the Seine.\n\nThe Seine is a river.")]
    llm = LogitsLM({"Ġriver": 5, EOS: 4})
    settings = test_settings.with_overrides(**{"answer.evidence_margin": 3.0,  # offer all three sentences
                                               "answer.quote_sentences": 1, "answer.quote_margin": 0.0})
    answer = AnswerService(settings, ListRetriever(hits), llm, FakeEmbedder()).ask("What is the capital of France?")
    assert answer.short == "river"
    # The sentence read after the answer's one ranks above the unrelated one.
    assert answer.extra["offered"] == ["Paris is the capital of France.", "It lies on the Seine.",
                                       "The Seine is a river."]
    text, spans = answer.sources[0].text, answer.sources[0].cited_spans
    assert [text[b:e] for b, e in spans] == ["The Seine is a river.", "Paris is the capital of France."]


def test_a_generative_answer_marks_the_evidence_each_claim_rests_on(test_settings):
    reply = "Paris is the capital of France [2]. It lies on the Seine river [2]."
    svc = AnswerService(test_settings.with_overrides(**{"answer.strategy": "generative"}), ListRetriever(HITS),
                        ScriptedLLM([reply]), FakeEmbedder())
    answer = svc.ask("What is the capital of France and which river does Paris lie on?")
    assert not answer.fallback
    cited = answer.sources[1]
    assert [cited.text[b:e] for b, e in cited.cited_spans] == ["The capital of France is Paris.",
                                                              "Paris lies on the Seine river."]


@pytest.mark.parametrize("strategy", ["extractive", "generative"])
def test_a_fallback_quote_marks_the_quoted_sentence(test_settings, strategy):
    llm = ScriptedLLM(["The capital of France is Lyon, home of the Louvre [1]."])
    svc = AnswerService(test_settings.with_overrides(**{"answer.strategy": strategy}), ListRetriever(HITS), llm,
                        FakeEmbedder())
    answer = svc.ask("What is the capital of France?")
    cited = answer.cited_sources
    assert [s.n for s in cited] == [2]
    assert [cited[0].text[b:e] for b, e in cited[0].cited_spans] == ["The capital of France is Paris."]


def test_a_sentence_split_across_lines_is_still_found(test_settings):
    # The sentence splitter joins "Dr." and "Smith" with one space; the source has three.
    hits = [hit("notes/wrap.md", "Intro here. The capital of France is Paris, says Dr.   Smith of the atlas.")]
    svc = AnswerService(test_settings, ListRetriever(hits), ScriptedLLM(), FakeEmbedder())
    answer = svc.ask("What is the capital of France?")
    text = answer.sources[0].text
    assert any("Paris" in text[b:e] for b, e in answer.sources[0].cited_spans)


def test_snap_prefers_the_run_that_says_what_the_question_does_not():
    evidence = ['Culturally, Melbourne is home to many museums and is described as the "sporting capital of Australia".']
    reply = "Melbourne is the sporting capital of Australia."
    question = question_words("What city in Victoria is called the sporting capital of Australia?")
    assert snap_to_evidence(reply, evidence) == "sporting capital of Australia"  # the longest run
    assert snap_to_evidence(reply, evidence, avoid=question) == "Melbourne"


@pytest.mark.parametrize("quote_sentences, margin, quoted", [
    (1, 0.0, ['"Paris is the capital of France."']),
    (2, 0.0, ['"Paris is the capital of France."', '"It lies on the Seine."']),
    # A margin the next sentence's score falls within: it is quoted too.
    (1, 3.0, ['"Paris is the capital of France."', '"It lies on the Seine."']),
    (2, 3.0, ['"Paris is the capital of France."', '"It lies on the Seine."', '"The Seine is a river."']),
])
def test_the_reply_quotes_the_best_ranked_offered_sentences(test_settings, quote_sentences, margin, quoted):
    hits = [hit("notes/a.md", "Paris is the capital of France. It lies on the Seine.\n\nThe Seine is a river.")]
    llm = LogitsLM({"ĠParis": 5, EOS: 4})
    settings = test_settings.with_overrides(**{"answer.evidence_margin": 3.0, "answer.quote_sentences": quote_sentences,
                                               "answer.quote_margin": margin})
    answer = AnswerService(settings, ListRetriever(hits), llm, FakeEmbedder()).ask("What is the capital of France?")
    assert answer.short == "Paris" and answer.extra["form"] == "short"
    assert re.findall(r'^".*" \[1\]$', answer.text, flags=re.M) == [f"{q} [1]" for q in quoted]

"""Prompt building, sentence splitting, support scoring and follow-up rewriting."""

from __future__ import annotations

import pytest

from rag_app.services.grounding import support
from rag_app.services.prompting import Passage, fit_passages, rewrite_followup, span_messages, topic_of
from rag_app.text import split_sentences


def turns(*questions: str) -> list[dict]:
    out = []
    for q in questions:
        out += [{"role": "user", "content": q}, {"role": "assistant", "content": "…"}]
    return out


@pytest.mark.parametrize("previous, followup, expected", [
    ("What is a variational autoencoder?", "and how is it trained?", "How is variational autoencoder trained?"),
    ("Where was Genghis Khan born?", "when did he die?", "When did Genghis Khan die?"),
    ("What is a VAE?", "and its loss?", "VAE's loss?"),
    ("How is a VAE trained?", "What about GANs?", "How is a GANs trained?"),
    ("How does the Transformer use attention?", "why?", "Why (Transformer)?"),
])
def test_followups_become_standalone(previous, followup, expected):
    assert rewrite_followup(followup, turns(previous)) == expected


def test_standalone_questions_are_unchanged():
    history = turns("What is a VAE?")
    assert rewrite_followup("Who founded Harvard University?", history) == "Who founded Harvard University?"
    assert rewrite_followup("and how is it trained?", []) == "and how is it trained?"


def test_rewrite_uses_the_previous_standalone_form():
    history = [{"role": "user", "content": "and how is it trained?", "standalone": "How is a VAE trained?"},
               {"role": "assistant", "content": "…"}]
    assert rewrite_followup("what does it learn?", history) == "What does VAE learn?"


def test_topic_prefers_names():
    assert topic_of("What city in Victoria is the sporting capital?") == "Victoria"
    assert topic_of("Explain diffusion models") == "diffusion models"


def test_split_sentences_keeps_abbreviations_and_splits_lists():
    text = "Dr. Smith went to the U.S. in 1990. He stayed.\n- first item\n- second item"
    assert split_sentences(text) == ["Dr. Smith went to the U.S. in 1990.", "He stayed.", "first item", "second item"]


def test_support_counts_content_words():
    assert support("Paris is the capital", "The capital of France is Paris.") == 1.0
    assert support("Lyon is the capital", "The capital of France is Paris.") == 0.5


def test_fit_passages_cuts_the_last_source_at_a_sentence():
    passages = [Passage(1, "One two three. " * 5), Passage(2, "Four five six. Seven eight nine. Ten eleven.")]

    def count(messages):
        return sum(len(m["content"].split()) for m in messages)

    budget = count(span_messages("q?", passages[:1])) + 8
    messages, kept = fit_passages(passages, lambda ps: span_messages("q?", ps), count, budget)
    assert [p.n for p in kept] == [1, 2]
    assert kept[1].text == "Four five six."
    assert count(messages) <= budget


def test_fit_passages_rejects_an_impossible_budget():
    with pytest.raises(ValueError):
        fit_passages([Passage(1, "x")], lambda ps: span_messages("q?", ps), lambda m: 10_000, 100)


def test_a_lone_verb_is_not_the_topic_of_a_follow_up():
    from rag_app.services.prompting import rewrite_followup, topic_of

    assert topic_of("Who invented the zorbulator?") == "zorbulator"
    history = [{"role": "user", "content": "Who invented the zorbulator?"}, {"role": "assistant", "content": "x"}]
    assert "zorbulator" in rewrite_followup("Who built it first?", history)
    assert topic_of("How is a VAE trained?") == "VAE"

"""Open questions get an explanation: 2-4 supporting sentences in reading order, each cited, none repeated."""

from __future__ import annotations

import re

from rag_app.api import RAG

VAE = ("# Variational autoencoders\n\n"
       "A variational autoencoder learns an encoder that maps each input to a distribution over latent codes. "
       "The variational autoencoder learns a decoder that maps latent codes back to inputs. "
       "Training the variational autoencoder maximises the evidence lower bound, a reconstruction term minus a KL "
       "term. The reparameterisation trick lets the variational autoencoder learn through the sampling step.\n")


def vae_rag(test_settings, tmp_path, **overrides) -> RAG:
    """The app over one page on variational autoencoders."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "vae.md").write_text(VAE, encoding="utf-8")
    rag = RAG(test_settings, **overrides)
    rag.ingest([docs])
    return rag


def test_an_open_question_is_explained_by_cited_sentences_in_reading_order(test_settings, tmp_path):
    rag = vae_rag(test_settings, tmp_path)
    answer = rag.ask("How does a variational autoencoder learn?")
    assert not answer.refused and answer.extra["form"] == "explain"
    body = answer.text.split("\n\n")[-1]
    sentences = re.findall(r"[^.]+?\[\d+\]\.", body)
    assert 2 <= len(sentences) <= 4 and all(re.search(r"\[\d+\]\.$", s) for s in sentences)
    plain = [re.sub(r"\s*\[\d+\]\.$", "", s).strip() for s in sentences]
    assert len(set(plain)) == len(plain)
    positions = [VAE.index(s) for s in plain]
    assert positions == sorted(positions)
    cited = answer.cited_sources
    assert cited and all(s.cited_spans for s in cited)


def test_a_factoid_question_keeps_the_short_form(test_settings, tmp_path):
    rag = vae_rag(test_settings, tmp_path)
    answer = rag.ask("What does the decoder map latent codes back to?")
    assert not answer.refused and answer.extra["form"] in {"short", "quote"}


def test_explanations_can_be_switched_off(test_settings, tmp_path):
    rag = vae_rag(test_settings, tmp_path, **{"answer.explain_sentences": 0})
    assert rag.ask("How does a variational autoencoder learn?").extra["form"] in {"short", "quote"}


def test_a_definition_question_is_explained(test_settings, tmp_path):
    rag = vae_rag(test_settings, tmp_path)
    answer = rag.ask("What is a variational autoencoder?")
    assert not answer.refused and answer.extra["form"] == "explain"
    assert len(re.findall(r"\[\d+\]\.", answer.text.split("\n\n")[-1])) >= 2

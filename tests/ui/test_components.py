"""The pure helpers behind the source cards: finding the cited span, escaping, labels, timings."""

from __future__ import annotations

from rag_app.ui.components import (
    TokenStream,
    cited_span,
    citing_sentences,
    escape_markdown,
    highlighted_snippet,
    source_label,
    timings_caption,
)

SOURCE = ("Autoencoders compress data. A variational autoencoder learns a distribution over latent codes. "
          "It was introduced in 2013.")


def test_the_cited_span_is_the_sentence_closest_to_the_answer():
    begin, end = cited_span(SOURCE, "It learns a distribution over latent codes [1].")
    assert SOURCE[begin:end] == "A variational autoencoder learns a distribution over latent codes."


def test_citing_sentences_pick_the_sentences_that_cite_that_source():
    answer = "VAEs learn distributions [1]. GANs use a discriminator [2, 3]. Both are generative [1,3]."
    assert citing_sentences(answer, 1) == "VAEs learn distributions . Both are generative ."
    assert citing_sentences(answer, 2) == "GANs use a discriminator ."
    assert citing_sentences(answer, 4) == ""


def test_the_snippet_marks_the_cited_sentence_and_escapes_the_rest():
    snippet = highlighted_snippet(SOURCE + " See *this* <b>now</b>.", "a distribution over latent codes [1]", 1)
    assert "<mark>A variational autoencoder learns a distribution over latent codes\\.</mark> It was" in snippet
    assert "\\*this\\*" in snippet and "&lt;b&gt;" in snippet and "<b>" not in snippet


def test_an_uncited_source_is_marked_only_on_a_strong_overlap():
    assert "<mark>" not in highlighted_snippet(SOURCE, "Latent diffusion works in a latent space [1].", 2)


def test_a_long_source_is_cut_around_the_cited_sentence():
    text = "Filler words here. " * 100 + "The key fact is that otters hold hands. " + "More filler. " * 100
    snippet = highlighted_snippet(text, "otters hold hands [1]", 1, limit=200)
    assert snippet.startswith("…") and snippet.endswith("…") and "<mark>The key fact" in snippet
    assert len(snippet) < 400


def test_escape_markdown_neutralises_syntax():
    assert escape_markdown("# x_1 [a](b) $5") == "\\# x\\_1 \\[a\\]\\(b\\) \\$5"


def test_source_label_and_timings():
    source = {"n": 2, "source": "vae.md", "section": "VAEs > ELBO", "page": None, "score": 0.4567, "cited": False}
    assert source_label(source) == "[2] vae.md — VAEs > ELBO · score 0.46"
    assert source_label({"n": 1, "source": "a.pdf", "page": 3, "score": 1}) == "[1] a.pdf — page 3 · score 1.00"
    assert timings_caption({"retrieve_ms": 12.4, "first_token_ms": 80, "total_s": 0.42}, "m") == \
        "retrieve 12 ms · first token 80 ms · total 420 ms · m"


def test_token_stream_passes_strings_and_keeps_the_answer():
    final = object()
    tokens = TokenStream(iter(["a", "b", final]))
    assert list(tokens) == ["a", "b"] and tokens.answer is final

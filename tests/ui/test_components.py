"""The pure helpers behind the source cards: marking the cited spans, escaping, labels, timings."""

from __future__ import annotations

from rag_app.ui.components import (
    TokenStream,
    escape_markdown,
    highlighted_snippet,
    source_label,
    timings_caption,
)

SOURCE = ("Autoencoders compress data. A variational autoencoder learns a distribution over latent codes. "
          "It was introduced in 2013.")


CITED = "A variational autoencoder learns a distribution over latent codes."


def span_of(text: str, sentence: str) -> tuple[int, int]:
    start = text.index(sentence)
    return start, start + len(sentence)


def test_the_snippet_marks_the_cited_span_and_escapes_the_rest():
    text = SOURCE + " See *this* <b>now</b>."
    snippet = highlighted_snippet(text, [span_of(text, CITED)])
    assert "<mark>A variational autoencoder learns a distribution over latent codes\\.</mark> It was" in snippet
    assert "\\*this\\*" in snippet and "&lt;b&gt;" in snippet and "<b>" not in snippet


def test_a_source_without_cited_spans_is_not_marked():
    assert "<mark>" not in highlighted_snippet(SOURCE, [])
    assert highlighted_snippet(SOURCE, []) == escape_markdown(SOURCE)


def test_every_cited_span_is_marked_and_offsets_survive_collapsed_whitespace():
    text = "Autoencoders   compress data.\n\nA variational autoencoder\nlearns a distribution over latent codes. It was introduced in 2013."
    first = span_of(text, "A variational autoencoder\nlearns a distribution over latent codes.")
    second = span_of(text, "Autoencoders   compress data.")
    snippet = highlighted_snippet(text, [first, second])
    assert snippet == ("<mark>Autoencoders compress data\\.</mark> <mark>A variational autoencoder learns a "
                       "distribution over latent codes\\.</mark> It was introduced in 2013\\.")


def test_a_long_source_is_cut_around_the_first_cited_span():
    text = "Filler words here. " * 100 + "The key fact is that otters hold hands. " + "More filler. " * 100
    far = span_of(text, "Filler words here.")  # a second span outside the window is left out
    snippet = highlighted_snippet(text, [span_of(text, "The key fact is that otters hold hands."), far], limit=200)
    assert snippet.startswith("…") and snippet.endswith("…") and "<mark>The key fact" in snippet
    assert snippet.count("<mark>") == 1 and len(snippet) < 400


def test_a_span_near_the_end_keeps_a_full_window():
    text = "Filler words here. " * 100 + "Otters hold hands."
    snippet = highlighted_snippet(text, [span_of(text, "Otters hold hands.")], limit=200)
    assert snippet.startswith("…") and snippet.endswith("</mark>") and len(snippet) > 190


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


def test_the_card_says_where_beside_the_snippet_and_offers_the_page_only_for_pdfs():
    from types import SimpleNamespace

    from rag_app.services.answer import Source
    from rag_app.ui.components import card_details, is_pdf_page

    def source(name: str, **meta) -> Source:
        hit = SimpleNamespace(metadata={"source": name, "title": "Ferry budget", **meta}, score=0.5, text="t", id="i")
        return Source.from_hit(1, hit)

    assert card_details(source("budget.xlsx", sheet="Q3", start_line=2, end_line=9)) == "Ferry budget · sheet Q3, rows 2-9"
    assert card_details(source("deck.pptx", slide=4)) == "Ferry budget · slide 4"
    assert card_details(source("notes.md", start_line=10, end_line=20)) == "Ferry budget · lines 10-20"
    assert card_details(source("scan.pdf", page=2, ocr=True)) == "Ferry budget · page 2 (OCR)"
    assert card_details({"title": "T", "lines": "3-4"}) == "T · lines 3–4"
    assert is_pdf_page(source("scan.PDF", page=2)) and not is_pdf_page(source("scan.pdf"))
    assert not is_pdf_page(source("deck.pptx", slide=4, page=4))

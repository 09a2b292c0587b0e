"""End to end with the real default models over the bundled corpus: the demos' own questions get their facts.

A new user's first questions are about the demos the app ships ("What batch size does the flow demo use?"). Each
answer must be the fact its demo page states, cited from that page, not a neighbouring number of the same sentence
("1,500 steps with a batch size of 128") or another demo's page.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def rag(tmp_path_factory):
    from rag_app.api import RAG
    from rag_app.settings import Settings

    app = RAG(Settings(home=tmp_path_factory.mktemp("corpus-home")))
    summary = app.ensure_corpus()
    assert summary is not None and summary.ok
    return app


@pytest.mark.parametrize(("question", "short", "page"), [
    ("What learning rate does the VAE demo use?", "2e-3", "demos/vae.md"),
    ("What batch size does the flow demo use?", "128", "demos/flow.md"),
    ("What batch size does the VAE demo use?", "128", "demos/vae.md"),
    ("How many sampling steps does DDIM use in the diffusion demo?", "50", "demos/diffusion.md"),
    # The schedule's chunk ranks fifth for this question (chunks naming the `timesteps` setting come first): it is
    # answered because an answer reads six chunks (`retrieve.k`).
    ("How many timesteps does the diffusion demo use?", "1,000", "demos/diffusion.md"),
])
def test_a_demo_question_gets_its_pages_fact(rag, question, short, page):
    answer = rag.ask(question)
    assert not answer.refused, answer.text
    assert answer.short == short, answer.text
    assert answer.cited_sources and answer.cited_sources[0].source == page, answer.text

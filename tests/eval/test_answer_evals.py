"""`rag eval answers` and `rag eval open` end to end on tiny sets, with the test profile's fakes."""

from __future__ import annotations

import json

import pytest

from rag_app.eval.answers import PassResult, question_type, refusal_scores
from rag_app.eval.open_answers import rouge_l_recall

DOCS = [
    ("a1", "Lighthouses", "The Skerry lighthouse was built in 1844. Its keeper logs the weather every four hours."),
    ("a2", "Lighthouses", "The lamp of the Skerry lighthouse burns paraffin."),
    ("b1", "Beekeeping", "A strong hive holds about 50,000 bees in summer. Bees dance to point at flowers."),
]
QUESTIONS = [
    ("q1", "When was the Skerry lighthouse built?", ["1844"], "a1"),
    ("q2", "How many bees does a strong hive hold in summer?", ["about 50,000", "50,000"], "b1"),
    ("q3", "What does the lamp of the Skerry lighthouse burn?", ["paraffin"], "a2"),
]


@pytest.fixture
def squad_like(tmp_path):
    folder = tmp_path / "tiny"
    folder.mkdir()
    with open(folder / "corpus.jsonl", "w") as handle:
        for doc_id, title, text in DOCS:
            handle.write(json.dumps({"_id": doc_id, "title": title, "text": text}) + "\n")
    with open(folder / "queries_dev.jsonl", "w") as handle:
        for qid, text, answers, corpus_id in QUESTIONS:
            handle.write(json.dumps({"_id": qid, "text": text, "answers": answers, "corpus_id": corpus_id}) + "\n")
    return folder


def test_question_types():
    assert [question_type(q) for q in (
        "How many steps does it take?", "When was it built?", "In what year did it open?", "Who wrote it?",
        "What is a VAE?", "Why are VAE samples blurry?", "How does DDIM sample faster?", "Compare GANs and VAEs.",
        "What is the difference between a GAN and a VAE?", "Name the tool.",
    )] == ["how many", "when", "when", "who", "what", "why-how", "why-how", "open", "open", "other"]
    assert question_type("What are the main challenges of training GANs?") == "open"
    assert question_type("What techniques did Project Apollo use?") == "what"


def test_definitions_want_an_explanation_and_factoids_do_not():
    from rag_app.services.questions import wants_explanation

    assert wants_explanation("What is a VAE?") and wants_explanation("What are mixture of experts models?")
    assert not wants_explanation("What is the name of the river?")
    assert not wants_explanation("What is the largest city in Poland?")


def test_refusal_precision_and_recall():
    answerable = PassResult(4, {}, {}, rows=[{"refused": r} for r in (True, False, False, False)])
    unanswerable = PassResult(4, {}, {}, rows=[{"refused": r} for r in (True, True, True, False)])
    assert refusal_scores(answerable, unanswerable) == {"precision": 75.0, "recall": 75.0, "f1": 75.0}


def test_rouge_l_recall_counts_the_longest_common_subsequence():
    assert rouge_l_recall("the encoder maps inputs to codes", "An encoder maps each input to codes") == \
        pytest.approx(4 / 6)  # "encoder maps to codes" of the reference's 6 normalised words
    assert rouge_l_recall("", "anything") == 0.0


def test_eval_answers_reports_types_and_refusal_scores(squad_like, monkeypatch, capsys):
    from rag_app.cli import main

    monkeypatch.setenv("RAG_PROFILE", "test")
    assert main(["eval", "answers", "--corpus", str(squad_like), "--unanswerable", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    types = result["answerable"]["by_type"]
    assert {name: t["n"] for name, t in types.items()} == {"when": 1, "how many": 1, "what": 1}
    refused_right = result["unanswerable"]["metrics"]["refused"] / 100 * 3
    refused_wrong = result["answerable"]["metrics"]["refused"] / 100 * 3
    assert result["refusal"]["recall"] == pytest.approx(100 * refused_right / 3, abs=0.01)
    if refused_right + refused_wrong:
        assert result["refusal"]["precision"] == pytest.approx(100 * refused_right / (refused_right + refused_wrong),
                                                               abs=0.01)


def test_eval_open_scores_replies_against_references(tmp_path, monkeypatch, capsys):
    from rag_app.cli import main

    monkeypatch.setenv("RAG_PROFILE", "test")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "vae.md").write_text("# Variational autoencoders\n\nA variational autoencoder learns a latent "
                                 "distribution and decodes samples from it.\n", encoding="utf-8")
    questions = tmp_path / "open.jsonl"
    questions.write_text(json.dumps({"_id": "o1", "text": "What does a variational autoencoder learn?",
                                     "reference": "A variational autoencoder learns a latent distribution."}) + "\n",
                         encoding="utf-8")
    assert main(["eval", "open", "--queries", str(questions), "--corpus", str(docs), "--collection", "open-test",
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["questions"] == 1 and result["metrics"]["answered"] == 100.0
    assert result["metrics"]["cosine"] > 0.5 and result["metrics"]["rouge_l_recall"] > 0.5
    assert result["metrics"]["supported"] == 100.0


def test_support_share_reads_a_marker_after_a_closing_quote_as_the_quote_s():
    from types import SimpleNamespace

    from rag_app.eval.open_answers import supported_share

    source = SimpleNamespace(n=1, text="A variational autoencoder learns a latent distribution. It decodes samples.")
    quoted = 'a latent distribution [1].\n\n"A variational autoencoder learns a latent distribution." [1]'
    assert supported_share(SimpleNamespace(text=quoted, sources=[source]), 0.5) == 1.0
    mixed = 'Cats purr loudly [1]. "A variational autoencoder learns a latent distribution." [1]'
    assert supported_share(SimpleNamespace(text=mixed, sources=[source]), 0.5) == 0.5


def test_squad2_style_unanswerable_questions_are_scored_as_squad_2_0(squad_like, monkeypatch, capsys):
    from rag_app.cli import main

    with open(squad_like / "queries_dev.jsonl", "a") as handle:
        for qid, text in (("u1", "What does the keeper of the Skerry lighthouse eat?"),
                          ("u2", "When was the Skerry lighthouse demolished?")):
            handle.write(json.dumps({"_id": qid, "text": text, "unanswerable": True, "corpus_id": "a1",
                                     "plausible": ["1844"]}) + "\n")
    monkeypatch.setenv("RAG_PROFILE", "test")
    details = squad_like / "details.jsonl"
    assert main(["eval", "answers", "--corpus", str(squad_like), "--json", "--details", str(details)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["answerable"]["questions"] == 3 and result["adversarial"]["questions"] == 2
    rows = [json.loads(line) for line in details.read_text().splitlines()]
    has = [r for r in rows if r["pass"] == "answerable"]
    none = [r for r in rows if r["pass"] == "adversarial"]
    expected_f1 = 100 * (sum(r["f1"] for r in has) + sum(r["refused"] for r in none)) / 5
    assert result["squad2"]["f1"] == pytest.approx(expected_f1, abs=0.01)
    assert result["squad2"]["no_answer_refused"] == pytest.approx(100 * sum(r["refused"] for r in none) / 2, abs=0.01)
    assert result["refusal"]["recall"] == result["squad2"]["no_answer_refused"]

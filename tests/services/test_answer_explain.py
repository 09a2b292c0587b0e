"""Open questions get an explanation: 2-4 supporting sentences in reading order, each cited, none repeated."""

from __future__ import annotations

import re

import pytest

from rag_app.api import RAG
from rag_app.services.questions import defined_term, defines, is_definition, question_type

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


def test_a_definition_of_a_named_term_is_explained(test_settings, tmp_path):
    rag = vae_rag(test_settings, tmp_path)
    answer = rag.ask("What is the variational autoencoder?")  # was read as "What is the capital of …"
    assert not answer.refused and answer.extra["form"] == "explain"


@pytest.mark.parametrize("question, defines", [
    ("What is the reparameterization trick?", True), ("What is the ELBO?", True), ("What are the GAN losses?", True),
    ("What is a VAE?", True), ("What is the capital of France?", False), ("What is the largest city?", False),
    ("What is the first step?", False), ("What is the reason the sky is blue?", False), ("What is it?", False),
    ("What is the learning rate?", False), ("What is the VAE batch size?", False), ("What is the second step?", False),
])
def test_what_is_the_term_asks_for_a_definition_what_is_the_x_of_y_does_not(question, defines):
    assert is_definition(question) is defines


STEPS = ("# Training a diffusion model\n\n"
         "A diffusion model learns to undo noise that is added to images step by step. "
         "Training a diffusion model can be broken down into the following steps:\n\n"
         "1. Sample a clean image from the training data.\n"
         "2. Add Gaussian noise at a random timestep of the noise schedule.\n"
         "3. Train the network to predict the added noise from the noisy image.\n\n"
         "Sampling a diffusion model runs the learnt denoiser from pure noise back to an image.\n")


def test_a_sentence_that_introduces_a_list_brings_its_items_each_cited(test_settings, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "diffusion.md").write_text(STEPS, encoding="utf-8")
    rag = RAG(test_settings, **{"answer.evidence_margin": 3.0})  # the fake embedder's cosines are far apart
    rag.ingest([docs])
    answer = rag.ask("What are the steps of training a diffusion model?")
    assert not answer.refused and answer.extra["form"] == "explain"
    lines = answer.text.splitlines()
    intro = next(i for i, line in enumerate(lines) if "following steps" in line)
    assert re.fullmatch(r".*following steps \[\d\]:", lines[intro])
    items = lines[intro + 1:intro + 4]
    assert [re.sub(r" \[\d\]$", "", item) for item in items] == [
        "- Sample a clean image from the training data.",
        "- Add Gaussian noise at a random timestep of the noise schedule.",
        "- Train the network to predict the added noise from the noisy image."]
    source = answer.cited_sources[0]
    cited_texts = [source.text[a:b] for a, b in source.cited_spans]
    assert "Sample a clean image from the training data." in cited_texts


def test_an_explanation_opens_with_a_whole_sentence_not_a_fragment(test_settings, tmp_path):
    rag = vae_rag(test_settings, tmp_path)
    answer = rag.ask("How does a variational autoencoder learn?")
    first = answer.text.split(" [")[0]
    assert first[:1].isupper() and first in VAE and len(first.split()) >= 5


def test_sentences_of_one_file_are_explained_in_the_files_order_not_by_rank(test_settings):
    from tests.services.test_answer import hit, service

    later = hit("notes/vae.md", "The variational autoencoder trick works for any distribution written as a transform "
                "of noise. A variational autoencoder samples with reparameterised noise.", start_line=20, end_line=22)
    earlier = hit("notes/vae.md", "A variational autoencoder is a generative model that learns an encoder and a "
                  "decoder. The variational autoencoder maximises the evidence lower bound.", start_line=1, end_line=3)
    svc, _ = service(test_settings, hits=[later, earlier], evidence_margin=3.0, min_relevance=0.0)
    answer = svc.ask("What is a variational autoencoder?")
    assert answer.extra["form"] == "explain", answer.text
    cited = re.findall(r"\[(\d)\]", answer.text.split("\n\n")[-1])
    assert "2" in cited and "1" in cited
    assert cited.index("2") < cited.index("1")  # lines 1-3 read before lines 20-22, though ranked second


@pytest.mark.parametrize("question, kind", [
    ("When generating sequences with LLMs, how can you handle long contexts efficiently?", "why-how"),
    ("When dealing with categorical features, how would you train embeddings?", "why-how"),
    ("When the war ended, who ruled China?", "who"),
    ("In the IMDB experiment, how many words are used?", "how many"),
    ("When did the Yuan dynasty end?", "when"),
    ("When was the paper, the first of its kind, published?", "when"),
    ("In what year was the treaty signed, which ended the war?", "when"),
    ("For how many years did he reign, when he was king?", "how many"),
    ("What does a variational autoencoder learn?", "why-how"),  # described, not named: was "1,000 steps [2]."
    ("What does the encoder learn to predict?", "why-how"),
    ("What does 'Pax Mongolica' mean?", "what"),
    ("What did the Mongol elites wish Buyantu didn't do?", "what"),
])
def test_a_leading_clause_sets_the_scene_and_the_main_clause_is_the_question(question, kind):
    assert question_type(question) == kind


def test_a_how_question_behind_a_when_clause_is_explained(test_settings, tmp_path):
    rag = vae_rag(test_settings, tmp_path)
    answer = rag.ask("When training on images, how does a variational autoencoder learn?")
    assert not answer.refused and answer.extra["form"] == "explain"


def test_overlapping_chunks_of_one_file_are_read_by_each_sentences_own_line(test_settings):
    from tests.services.test_answer import hit, service

    lines = ["A variational autoencoder is a generative model with an encoder.",
             "The variational autoencoder encoder outputs a mean and a variance.",
             "The variational autoencoder decoder maps latent codes to images.",
             "A variational autoencoder is trained on the evidence lower bound.",
             "A variational autoencoder samples by decoding Gaussian noise."]
    whole = hit("notes/vae.md", "\n".join(lines), start_line=1, end_line=5)
    tail = hit("notes/vae.md", "\n".join(lines[3:]), start_line=4, end_line=5)
    svc, _ = service(test_settings, hits=[tail, whole], evidence_margin=3.0, min_relevance=0.0,
                     explain_sentences=4)
    answer = svc.ask("What is a variational autoencoder?")
    assert answer.extra["form"] == "explain", answer.text
    said = [line for line in lines if line.rstrip(".") in answer.text]
    assert len(said) >= 3
    assert [answer.text.index(line.rstrip(".")) for line in said] == sorted(answer.text.index(line.rstrip("."))
                                                                             for line in said)


@pytest.mark.parametrize("sentence, term, expected", [
    ("Classifier-free guidance (CFG, Ho and Salimans, 2021) is a technique that makes a model follow its prompt.",
     "classifier-free guidance", True),
    ("Classifier-free guidance removes that need.", "classifier-free guidance", False),  # opens with it, defines not
    ("A variational autoencoder (VAE) is a generative model.", "VAE", True),
    ("The reparameterisation trick is the technique that lets a VAE learn.", "reparameterization trick", True),
    ("A flow-based model, also called a normalising flow, is a generative model.", "normalizing flow", True),
    ("A flow-based model, also called a normalising flow, was popular.", "normalizing flow", False),
    ("CLIP score complements FID.", "classifier-free guidance", False),
    ("The guidance scale of classifier-free guidance is w.", "classifier-free guidance", False),
])
def test_which_sentence_defines_a_term(sentence, term, expected):
    assert defines(sentence, term) is expected


def test_the_term_of_a_definition_question():
    assert defined_term("What is classifier-free guidance?") == "classifier-free guidance"
    assert defined_term("What is the reparameterization trick?") == "reparameterization trick"
    assert defined_term("What is the capital of France?") is None and defined_term("Why is it blue?") is None


def test_a_definition_question_opens_with_the_sentence_that_defines_the_term(test_settings):
    from tests.services.test_answer import hit, service

    guidance = hit("notes/diffusion.md", "Classifier guidance adds the gradient of a noisy-image classifier to "
                   "the score at each sampling step. Classifier-free guidance removes that need.", start_line=1,
                   end_line=2)
    definition = hit("notes/diffusion.md", "Classifier-free guidance (CFG) is a technique that makes a conditional "
                     "diffusion model follow its prompt more closely, without a separate classifier. During "
                     "training the prompt is dropped at random so that one network learns both predictions.",
                     start_line=5, end_line=6)
    svc, _ = service(test_settings, hits=[guidance, definition], evidence_margin=3.0, min_relevance=0.0)
    answer = svc.ask("What is classifier-free guidance?")
    assert answer.extra["form"] == "explain", answer.text
    assert answer.text.startswith("Classifier-free guidance (CFG) is a technique"), answer.text
    # The short sentence whose few words the definition also has is kept beside it (it says something else).
    assert "Classifier-free guidance removes that need" in answer.text

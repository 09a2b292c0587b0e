"""`rag train-reader` on a tiny random Llama and a handful of pairs: the loss falls, the adapter is saved as
safetensors with its card, reloads into the LM, and a run stopped half-way and resumed ends where an unbroken run
ends; the examples are in the answer service's prompt, with abstention examples."""

from __future__ import annotations

import json

import pytest

from rag_app.errors import RagError
from rag_app.services.prompting import NO_ANSWER
from rag_app.settings import Settings
from tests.fixtures.tiny_lm import make_tiny_lm

pytest.importorskip("peft")
torch = pytest.importorskip("torch")

PAIRS = [
    {"question": "what is the capital of France ?", "context": "the capital of France is Paris .",
     "answers": ["Paris"], "group": "france"},
    {"question": "what is the capital of Peru ?", "context": "the capital of Peru is Lima .", "answers": ["Lima"],
     "group": "peru"},
    {"question": "what river is long ?", "context": "the capital of Peru is Lima .", "answers": [], "group": "river"},
    {"question": "what is long ?", "context": "the capital of Peru is Lima .", "answers": [], "group": "long"},
]


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory):
    return make_tiny_lm(tmp_path_factory.mktemp("tiny-base"), hidden=32, init_range=0.5)


@pytest.fixture
def pairs(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in PAIRS))
    return path


def _config(pairs, out, base, **overrides):
    from rag_app.training.trainer import ReaderTrainConfig

    values = dict(data=[pairs], out=out, base=str(base), seed=3, epochs=25, learning_rate=3e-2, warmup_steps=2,
                  batch_size=2, accumulate=1, dev_share=0.0, checkpoint_every=5, dtype="float32", device="cpu",
                  negatives=0.0, perturbed=0.0, removed=0.0)
    values.update(overrides)
    return ReaderTrainConfig(**values)


def test_training_lowers_the_loss_and_writes_a_reloadable_adapter_with_its_card(pairs, tmp_path, tiny_base):
    from rag_app.components.llm import TransformersLLM
    from rag_app.training.trainer import train_reader

    settings = Settings(profile="test", home=tmp_path / "home")
    card = train_reader(_config(pairs, tmp_path / "run", tiny_base), settings, log=lambda _m: None)
    adapter = tmp_path / "run" / "adapter"
    assert {p.name for p in adapter.iterdir()} >= {"adapter_model.safetensors", "adapter_config.json",
                                                     "reader_card.json"}
    assert json.loads((adapter / "reader_card.json").read_text()) == card
    assert card["training"]["loss_after"] < 0.5 * card["training"]["loss_before"]
    assert card["training"]["examples"] == 4 and card["training"]["by_kind"] == {"answer": 2, "unanswerable": 2}
    assert card["base_model"] == str(tiny_base) and card["prompt"]["no_answer"] == NO_ANSWER
    assert card["data"]["data_files"] and card["adapter_sha256"]

    # Reloaded into the LM (merged on load), the trained reply is far likelier than under the base model.
    from rag_app.training.data import load_examples
    from rag_app.training.trainer import example_messages

    example = next(e for e in load_examples(tmp_path / "run" / "examples.jsonl") if e.target == "Paris")
    messages = example_messages(example)

    def reply_logprob(llm) -> float:
        with llm.continuations(messages, prefix="Answer:") as run:
            (token_lp, end_lp), = run.score([llm.tokenize(" Paris")], llm.stop_ids())
        return float(token_lp.sum() + end_lp[-1])

    base = TransformersLLM(str(tiny_base), tmp_path / "cache", device="cpu", dtype="float32")
    tuned = TransformersLLM(str(tiny_base), tmp_path / "cache", device="cpu", dtype="float32", adapter=str(adapter))
    again = TransformersLLM(str(tiny_base), tmp_path / "cache", device="cpu", dtype="float32", adapter=str(adapter))
    assert tuned.reader is not None and tuned.name.endswith("+reader@" + card["adapter_sha256"][:10])
    assert reply_logprob(tuned) > reply_logprob(base) + 1.0
    assert reply_logprob(again) == pytest.approx(reply_logprob(tuned), abs=1e-5)


def test_a_stopped_run_resumes_to_the_same_adapter(pairs, tmp_path, tiny_base):
    from safetensors.torch import load_file

    from rag_app.training.trainer import train_reader

    settings = Settings(profile="test", home=tmp_path / "home")
    train_reader(_config(pairs, tmp_path / "whole", tiny_base, epochs=4), settings, log=lambda _m: None)
    stopped = train_reader(_config(pairs, tmp_path / "split", tiny_base, epochs=4, stop_after_steps=3), settings,
                           log=lambda _m: None)
    assert stopped == {"stopped_at_step": 3, "steps": 8}
    assert not (tmp_path / "split" / "adapter").exists() and (tmp_path / "split" / "checkpoint").is_dir()
    card = train_reader(_config(pairs, tmp_path / "split", tiny_base, epochs=4), settings, log=lambda _m: None)
    assert card["training"]["resumed_at_step"] == 3
    whole = load_file(str(tmp_path / "whole" / "adapter" / "adapter_model.safetensors"))
    split = load_file(str(tmp_path / "split" / "adapter" / "adapter_model.safetensors"))
    assert whole.keys() == split.keys()
    for name in whole:
        assert torch.allclose(whole[name].float(), split[name].float(), atol=1e-2), name


def test_examples_use_the_service_prompt_and_teach_abstention(tmp_path):
    from rag_app.components.embedder import get_embedder
    from rag_app.services.grounding import SentenceWeights
    from rag_app.training.data import QAItem, build_examples
    from rag_app.training.trainer import example_messages

    settings = Settings(profile="test", home=tmp_path / "home")
    items = [QAItem("When was the Eiffel Tower completed?", ["The Eiffel Tower was completed in 1889. It is in Paris."],
                    ["1889"], "eiffel", "own", "Eiffel Tower"),
             QAItem("When was the Colosseum completed?", ["The Colosseum was completed in 80 AD. It is in Rome."],
                    ["80 AD"], "rome", "own", "Colosseum")]
    examples = build_examples(items, get_embedder(settings), sentence_weights=SentenceWeights(*([1.0] * 7)),
                              evidence_sentences=2, evidence_margin=3.0, hits=1, negatives=1.0, perturbed=1.0, removed=1.0,
                              seed=1)
    kinds = {(e.question, e.kind): e for e in examples}
    first = kinds[("When was the Eiffel Tower completed?", "answer")]
    assert first.target == "1889" and any("1889" in text for _, text in first.evidence)
    negative = kinds[("When was the Eiffel Tower completed?", "retrieved-negative")]
    assert negative.target == NO_ANSWER and all("1889" not in text for _, text in negative.evidence)
    perturbed = [e for e in examples if e.kind == "perturbed"]
    silent = kinds[("When was the Eiffel Tower completed?", "answer-removed")]
    assert silent.target == NO_ANSWER and silent.evidence
    assert all("1889" not in text and "Eiffel" in text or "Paris" in text for _, text in silent.evidence)
    own_question = {i.group: i.question for i in items}
    assert perturbed and all(e.target == NO_ANSWER and e.question != own_question[e.group] for e in perturbed)
    messages = example_messages(first)
    assert messages[0]["role"] == "system" and NO_ANSWER in messages[0]["content"]
    assert messages[-1]["content"].endswith("Question: When was the Eiffel Tower completed?")
    assert '<source id=1 title="Eiffel Tower">' in messages[-1]["content"]


def test_own_pairs_whose_answer_is_not_in_the_context_are_refused_with_the_line(tmp_path):
    from rag_app.training.data import load_items

    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"question": "q?", "context": "some text", "answers": ["missing"]}) + "\n")
    with pytest.raises(RagError, match=r"bad.jsonl, line 1: the answer 'missing' is not a verbatim part"):
        load_items([path])


NO_POOL = {"name": [], "lower-name": [], "number": []}


@pytest.mark.parametrize("question, passage, pool, expected", [
    # a superlative swapped for its opposite that the passage lacks (the passage's negation rules out negating)
    ("Which river is the longest in Europe?", "The Volga is the longest river in Europe, not the Danube.", NO_POOL,
     {"Which river is the shortest in Europe?"}),
    # the question negated where the passage holds no negation (only sometimes: negation is kept rare)
    ("When was the bridge built?", "The bridge was built in 1900.", NO_POOL, {"When wasn't the bridge built?", None}),
    # an all-lowercase question: a name of the passage found in it, swapped for another the passage lacks
    ("when was golden gate bridge built?", "The Golden Gate Bridge was built in 1937, not earlier.",
     {"name": [], "lower-name": ["golden gate bridge", "brooklyn bridge"], "number": []},
     {"when was brooklyn bridge built?"}),
    # never a name cut short where a sentence starts ("Will Hunting" of "Good Will Hunting")
    ("who played the lead in good will hunting?", "Good Will Hunting is a film. It stars Matt Damon, not others.",
     {"name": [], "lower-name": ["lion king"], "number": []}, {None}),
    # never a yes/no question ("Did they use BERT?" keeps its answer), nor "did" as the main verb
    ("Did they use BERT?", "They use BERT.", NO_POOL, {None}),
    ("who did the singing?", "Ann did the singing.", NO_POOL, {None}),
    # "won't" is not "won", "cold-start" not "start": whole words only, and comparatives are not swapped
    ("Why won't the cold-start model be better?", "The cold-start model is fine, not better.", NO_POOL, {None}),
])
def test_perturbed_questions_change_what_is_asked_so_the_passage_no_longer_answers(question, passage, pool,
                                                                                    expected):
    import random

    from rag_app.training.data import perturb

    changed = {perturb(question, passage, pool, random.Random(seed)) for seed in range(20)}
    assert changed == expected


def test_perturbed_names_come_from_the_same_source(tmp_path):
    from rag_app.components.embedder import get_embedder
    from rag_app.services.grounding import SentenceWeights
    from rag_app.training.data import QAItem, build_examples

    wiki = [QAItem(f"When did {name} open?", [f"{name} opened in {1900 + k}."], [str(1900 + k)], f"w{k}", "wiki")
            for k, name in enumerate(["Alpha Hall", "Beta Hall", "Gamma Hall"])]
    papers = [QAItem(f"What does {name} improve?", [f"{name} improves recall."], ["recall"], f"p{k}", "papers")
              for k, name in enumerate(["DeltaNet", "EpsilonNet", "ZetaNet"])]
    examples = build_examples(wiki + papers, get_embedder(Settings(profile="test", home=tmp_path / "home")),
                              sentence_weights=SentenceWeights(*([1.0] * 7)), evidence_sentences=2,
                              evidence_margin=3.0, hits=1, negatives=0.0, perturbed=1.0, seed=3)
    perturbed = [e for e in examples if e.kind == "perturbed"]
    assert perturbed
    for example in perturbed:
        others = ["DeltaNet", "EpsilonNet", "ZetaNet"] if example.source == "wiki" else ["Alpha", "Beta", "Gamma"]
        assert not any(name in example.question for name in others), example.question


def test_perturbing_is_seeded_and_swaps_in_only_what_the_passage_lacks():
    import random

    from rag_app.training.data import perturb

    passage = "Kublai Khan founded the Yuan dynasty in 1271; he wasn't its first choice."
    pool = {"name": ["Kublai Khan", "Yuan", "Ögedei Khan", "Genghis Khan"], "lower-name": [],
            "number": ["1271", "1368", "1206"]}
    question = "What dynasty did Kublai Khan found in 1271?"
    changed = [perturb(question, passage, pool, random.Random(seed)) for seed in range(12)]
    assert changed == [perturb(question, passage, pool, random.Random(seed)) for seed in range(12)]
    assert all(c and c != question for c in changed)
    swapped_in = {c.replace("What dynasty did ", "").replace(" found in ", "|").rstrip("?") for c in changed}
    assert swapped_in <= {"Ögedei Khan|1271", "Genghis Khan|1271", "Kublai Khan|1368", "Kublai Khan|1206"}
    assert len(swapped_in) > 1

"""The shipped trained reader: found for the packaged LM only, its weights are the ones its card describes, and the
card holds the calibrated decision with its provenance; a wrong adapter is an error that names the setting."""

from __future__ import annotations

import hashlib
import json

import pytest

from rag_app.components.reader_adapter import SHIPPED, resolve_adapter
from rag_app.errors import RagError
from rag_app.services.extractive import SpanCandidate, span_features
from rag_app.settings import PACKAGED_LLM, RetrieveSettings

SHIPPED_DIR = SHIPPED[PACKAGED_LLM]


def test_auto_means_the_shipped_reader_for_the_packaged_lm_and_none_for_others():
    reader = resolve_adapter("auto", PACKAGED_LLM)
    assert reader is not None and reader.path == SHIPPED_DIR
    assert resolve_adapter("auto", "Qwen/Qwen2.5-1.5B-Instruct") is None
    assert resolve_adapter("none", PACKAGED_LLM) is None


def test_the_shipped_weights_are_the_ones_the_card_describes_and_the_decision_has_its_fit():
    card = json.loads((SHIPPED_DIR / "reader_card.json").read_text())
    weights = (SHIPPED_DIR / "adapter_model.safetensors").read_bytes()
    assert hashlib.sha256(weights).hexdigest() == card["adapter_sha256"]
    assert card["base_model"] == PACKAGED_LLM and card["prompt"]["no_answer"] == "unanswerable"
    assert card["training"]["seed"] == 0 and card["training"]["steps"] > 0 and card["data"]["data_files"]
    decision = card["decision"]
    assert {"margin", "relevance_weight", "min_relevance"} <= decision.keys()
    fit = decision["fit"]
    assert fit["command"].startswith("python bench/reader_calibrate.py fit") and fit["commit"]
    assert set(fit["cross_validated"]) == {"squad", "squad2_dev", "papers_dev", "genai_dev"}
    # The rule reads retrieval's features: it was fitted at the chunks per question that ship.
    assert fit["retrieve_k"] == RetrieveSettings.model_fields["k"].default
    assert len(weights) < 8 * 2**20  # a few MB: it ships in the repository


def test_a_folder_that_is_no_adapter_names_the_setting(tmp_path):
    with pytest.raises(RagError, match="RAG_LLM__ADAPTER"):
        resolve_adapter(str(tmp_path), PACKAGED_LLM)


def test_an_adapter_trained_for_another_model_is_refused(tmp_path):
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        (tmp_path / name).write_text("{}")
    (tmp_path / "reader_card.json").write_text(json.dumps({"base_model": "some/other-model"}))
    with pytest.raises(RagError, match="trained on some/other-model"):
        resolve_adapter(str(tmp_path), PACKAGED_LLM)


def test_the_shipped_reading_weights_have_their_fit_and_name_the_model():
    card = json.loads((SHIPPED_DIR / "reader_card.json").read_text())
    reading = card["reading"]
    # One weight for each feature the answer service computes of a span, none it does not.
    spans = [SpanCandidate("Melbourne", 0, 2, -0.5, 0.0, -0.5)]
    features = span_features(spans, [{"asked": 0.0, "far": 0.0, "rank": 0.0}], "Which city?")
    assert set(reading["weights"]) == set(features[0]) and "length_power" in reading
    fit = reading["fit"]
    assert fit["retrieve_k"] == RetrieveSettings.model_fields["k"].default  # recorded with the evidence that ships
    assert fit["command"].startswith("python bench/reader_calibrate.py fit-spans") and fit["commit"]
    assert set(fit["figures"]) == {"squad", "squad2_dev", "papers_dev"}
    assert all("cross_validated_f1" in figures for figures in fit["figures"].values())
    # The fitted numbers change replies, so the model's name changes with them.
    assert "+fit@" in resolve_adapter("auto", PACKAGED_LLM).tag

"""Ranking metrics on hand-checked rankings (values worked out by hand, see the comments)."""

from __future__ import annotations

import math

import pytest

from rag_app.eval.metrics import evaluate_rankings, mrr_at_k, ndcg_at_k, percentile, recall_at_k

LOG3 = math.log2(3)  # discount at rank 2
LOG5 = math.log2(5)  # discount at rank 4


def test_binary_ranking():
    ranking = ["a", "b", "c", "d"]
    relevant = {"b": 1, "d": 1}
    # DCG = 1/log2(3) + 1/log2(5) = 0.63093 + 0.43068; ideal = 1 + 1/log2(3) = 1.63093.
    assert ndcg_at_k(ranking, relevant, 10) == pytest.approx((1 / LOG3 + 1 / LOG5) / (1 + 1 / LOG3))
    assert ndcg_at_k(ranking, relevant, 10) == pytest.approx(0.650921, abs=1e-6)
    assert recall_at_k(ranking, relevant, 1) == 0.0
    assert recall_at_k(ranking, relevant, 2) == 0.5
    assert recall_at_k(ranking, relevant, 10) == 1.0
    assert mrr_at_k(ranking, relevant, 10) == 0.5
    assert mrr_at_k(ranking, relevant, 1) == 0.0


def test_graded_relevance_uses_linear_gains():
    # DCG = 1 + 2/log2(3) = 2.26186; ideal (a first) = 2 + 1/log2(3) = 2.63093.
    assert ndcg_at_k(["c", "a"], {"a": 2, "c": 1}, 10) == pytest.approx(0.859719, abs=1e-6)
    assert ndcg_at_k(["a", "c"], {"a": 2, "c": 1}, 10) == pytest.approx(1.0)


def test_cutoff_and_duplicates():
    # The relevant document at rank 11 is outside nDCG@10 and Recall@10.
    ranking = [f"x{i}" for i in range(10)] + ["r"]
    assert ndcg_at_k(ranking, {"r": 1}, 10) == 0.0
    assert recall_at_k(ranking, {"r": 1}, 10) == 0.0
    assert recall_at_k(ranking, {"r": 1}, 11) == 1.0
    # A repeated id counts once, at its best rank (chunks of one document).
    assert ndcg_at_k(["a", "a", "b"], {"b": 1}, 10) == pytest.approx(1 / LOG3)
    assert mrr_at_k(["a", "a", "b"], {"b": 1}, 10) == 0.5


def test_no_relevant_document():
    assert ndcg_at_k(["a"], {}, 10) == 0.0
    assert recall_at_k(["a"], {"a": 0}, 10) == 0.0


def test_evaluate_rankings_means_over_judged_queries():
    rankings = {"q1": ["a", "b"], "q2": ["c"], "q3": ["z"]}
    qrels = {"q1": {"a": 1}, "q2": {"d": 1}, "q4": {"e": 1}}
    metrics = evaluate_rankings(rankings, qrels)
    # q1 perfect, q2 and q4 (no ranking) score 0; q3 has no judgements and is not counted.
    assert metrics["queries"] == 3
    assert metrics["ndcg@10"] == pytest.approx(1 / 3)
    assert metrics["recall@1"] == pytest.approx(1 / 3)
    assert metrics["mrr@10"] == pytest.approx(1 / 3)


def test_percentile_interpolates():
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([5.0], 95) == 5.0
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 95) == pytest.approx(4.8)

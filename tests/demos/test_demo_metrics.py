"""metrics.py: the digit scorer separates real digits from noise, and the Frechet distance behaves."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rag_app.demos import data, metrics


def test_frechet_distance_of_same_gaussian_is_small_and_of_shifted_is_large():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2000, 8)), rng.normal(size=(2000, 8))
    assert metrics.frechet_distance(a, a) < 1e-6
    assert metrics.frechet_distance(a, b) < 0.1
    # Shifting every coordinate by 1 adds |mu_a - mu_b|^2 = 8.
    assert abs(metrics.frechet_distance(a, b + 1.0) - 8.0) < 0.3


@pytest.mark.slow
def test_scorer_is_cached_as_safetensors_in_the_data_home(demo_home):
    scorer = metrics.load_scorer()
    assert (demo_home / "cache" / "digit_scorer.safetensors").is_file()
    digits = data.load_digits()
    with torch.no_grad():
        accuracy = (scorer(digits.heldout).argmax(-1) == digits.heldout_labels).float().mean()
    assert accuracy > 0.9


@pytest.mark.slow
def test_real_digits_score_far_better_than_noise():
    rows = metrics.reference_rows(n=300)
    real, uniform = rows["real digits (train split)"], rows["uniform noise"]
    gaussian = rows["gaussian noise (per-pixel mean/std)"]
    assert real["quality"] > 0.8 and uniform["quality"] < 0.2 and gaussian["quality"] < 0.6
    assert real["coverage"] == 1.0 and real["entropy"] > 3.2
    assert real["fd"] * 10 < gaussian["fd"] and real["fd"] * 10 < uniform["fd"]


def test_real_heldout_vs_train_frechet_is_much_smaller_than_vs_noise():
    digits = data.load_digits()
    real = metrics.score_samples(digits.train[:359], digits)
    noise = metrics.score_samples(torch.rand(359, 1, 8, 8), digits)
    assert real["fd"] * 10 < noise["fd"]


def test_scorer_trains_inside_no_grad_without_touching_the_global_rng():
    """The first scoring call usually comes from a demo's @torch.no_grad() evaluation."""
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    with torch.no_grad():
        a = metrics.train_scorer(data.load_digits(), steps=3)
    assert torch.equal(torch.rand(3), expected)
    b = metrics.train_scorer(data.load_digits(), steps=3)
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())  # seeded

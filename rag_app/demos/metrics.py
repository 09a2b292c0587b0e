"""How good are the generated digits? A small digit classifier judges them (issue 4, section 5).

The scorer is a two-layer CNN trained, seeded, on the real training split; its weights are cached as
`<cache_dir>/digit_scorer.safetensors` (MNIST: `digit_scorer-mnist.safetensors`; `cache_dir` is the settings'
`<home>/cache`, passed in by `run_demo`), so every demo and every run is judged by the same network. From its
outputs come:

- quality: the share of samples the scorer classifies with confidence >= 0.9 ("looks like some digit");
- coverage: the share of the ten classes that appear among those confident samples (mode collapse lowers it);
- entropy: entropy in bits of the predicted labels over all samples (log2(10) = 3.32 when classes are balanced);
- fd: the Frechet distance between Gaussians fitted to the scorer's 64-d penultimate features of the held-out real
  digits and of the samples, an FID analogue (0 for identical distributions; lower is better);
- samples_per_s: measured by each demo around its own sampler.

`reference_rows()` gives the same figures for real training digits (the floor a perfect model would reach) and
for two kinds of noise (the ceiling), so a demo's numbers can be read on that scale.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from rag_app.demos.data import Digits, load_digits

SCORER_VERSION = "1"  # bump to retrain cached scorers after changing the network or its training
CONFIDENT = 0.9  # a sample counts towards quality when the scorer's top probability reaches this
N_EVAL = 500  # samples each demo generates for its metrics


class DigitScorer(nn.Module):
    """8x8 digit classifier whose penultimate layer doubles as the feature space for the Frechet distance."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),  # (B, 16, 8, 8)
            nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),  # (B, 32, 4, 4)
            nn.Flatten(),  # (B, 512)
            nn.Linear(32 * 4 * 4, 64), nn.ReLU(),  # (B, 64) penultimate features
        )
        self.head = nn.Linear(64, 10)  # (B, 10) logits

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def outliers(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Non-digits with digit-like statistics: pixel-shuffled real digits, and uniform noise at random brightness."""
    b = len(x)
    perm = torch.argsort(torch.rand((b, 64), generator=gen), dim=1)  # a different pixel order per image
    shuffled = torch.gather(x.reshape(b, 64), 1, perm).reshape(b, 1, 8, 8)
    noise = torch.rand((b, 1, 8, 8), generator=gen) * torch.rand((b, 1, 1, 1), generator=gen)
    half = torch.rand((b, 1, 1, 1), generator=gen) < 0.5
    return torch.where(half, shuffled, noise)  # (B, 1, 8, 8)


def train_scorer(data: Digits, steps: int = 700, batch_size: int = 128, seed: int = 0) -> DigitScorer:
    """Train the scorer on the real training split (CPU, a few seconds).

    Classifiers are overconfident on inputs unlike anything they saw, which would let noise pass the quality
    test. So each batch also holds non-digits (`outliers`) whose target is the uniform distribution over the
    ten classes ("outlier exposure", Hendrycks et al., 2019). The reference rows are scored on other kinds of
    noise (Gaussian pixels, full-range uniform noise) than the scorer was shown.
    """
    gen = torch.Generator().manual_seed(seed)
    # fork_rng: seeding here must not disturb the global RNG of the demo run that triggered the training;
    # enable_grad: the first call often comes from inside a demo's @torch.no_grad() evaluation.
    with torch.random.fork_rng(devices=[]), torch.enable_grad():
        torch.manual_seed(seed)
        model = DigitScorer()
        _fit(model, data, steps, batch_size, gen)
    return model.eval()


def _fit(model: DigitScorer, data: Digits, steps: int, batch_size: int, gen: torch.Generator) -> None:
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(steps):
        index = torch.randint(0, len(data.train), (batch_size,), generator=gen)
        x, y = data.train[index], data.train_labels[index]  # (B, 1, 8, 8), (B,)
        dx, dy = torch.randint(-1, 2, (2,), generator=gen).tolist()
        x = torch.roll(x, shifts=(dy, dx), dims=(2, 3))  # 1-pixel shifts make the features less brittle
        fake = outliers(x[: batch_size // 4], gen)  # (B/4, 1, 8, 8)
        loss = F.cross_entropy(model(x), y) - 0.5 * F.log_softmax(model(fake), -1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def default_cache_dir() -> Path:
    """`<home>/cache` of the settings tree (the environment's `RAG_HOME`), for callers that pass no folder."""
    from rag_app.settings import Settings

    return Settings().cache_dir


def scorer_path(data: Digits, cache_dir: Path | None = None) -> Path:
    suffix = "" if data.source == "sklearn-digits" else f"-{data.source}"
    return Path(cache_dir or default_cache_dir()) / f"digit_scorer{suffix}.safetensors"


def load_scorer(data: Digits | None = None, cache_dir: Path | None = None) -> DigitScorer:
    """The scorer for this data, on the CPU in eval mode: read from the cache file, else trained and saved there.

    `cache_dir` defaults to the settings' `<home>/cache`; `run_demo` passes its settings' folder.
    """
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    data = data or load_digits()
    path = scorer_path(data, cache_dir)
    model = _SCORERS.get(data.source)  # seeded training makes it the same network whatever the data home
    if model is None and path.is_file():
        with safe_open(str(path), "pt") as handle:
            meta = handle.metadata() or {}
        if meta.get("version") == SCORER_VERSION and meta.get("source") == data.source:
            model = DigitScorer()
            model.load_state_dict(load_file(str(path)))
            model.eval()
    if model is None:
        model = train_scorer(data)
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp),
                  metadata={"version": SCORER_VERSION, "source": data.source})
        tmp.replace(path)  # atomic: a concurrent run never reads half a file
    _SCORERS[data.source] = model
    return model


_SCORERS: dict[str, DigitScorer] = {}  # one scorer per data source and process


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to feature sets a (N, D) and b (M, D).

    d^2 = |mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a^1/2 S_b S_a^1/2)^1/2), with the matrix square roots taken
    through symmetric eigendecompositions (stable, no complex parts as with scipy.linalg.sqrtm).
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    w, v = np.linalg.eigh(cov_a)
    sqrt_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    middle = sqrt_a @ cov_b @ sqrt_a
    tr_covmean = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum()
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * tr_covmean)


@torch.no_grad()
def score_samples(samples: torch.Tensor, data: Digits | None = None, cache_dir: Path | None = None) -> dict[str, float]:
    """quality, coverage, entropy and fd of (N, 1, 8, 8) samples in [0, 1] against the held-out real digits."""
    data = data or load_digits()
    scorer = load_scorer(data, cache_dir)
    x = samples.detach().float().cpu().clamp(0, 1)
    feats = scorer.features(x)  # (N, 64)
    probs = scorer.head(feats).softmax(-1)  # (N, 10)
    confidence, label = probs.max(-1)
    confident = confidence >= CONFIDENT
    counts = torch.bincount(label, minlength=10).double()
    p = counts / counts.sum()
    entropy = float(-(p[p > 0] * p[p > 0].log2()).sum())
    real_feats = scorer.features(data.heldout)  # (M, 64)
    return {
        "quality": round(float(confident.float().mean()), 4),
        "coverage": round(len(set(label[confident].tolist())) / 10, 4),
        "entropy": round(entropy, 4),
        "fd": round(frechet_distance(real_feats.numpy(), feats.numpy()), 4),
    }


def reference_rows(n: int = N_EVAL, seed: int = 0, data: Digits | None = None,
                   cache_dir: Path | None = None) -> dict[str, dict[str, float]]:
    """The metrics of real training digits (floor) and of noise (ceiling), for n images each."""
    data = data or load_digits()
    gen = torch.Generator().manual_seed(seed)
    real = data.train[torch.randperm(len(data.train), generator=gen)[:n]]  # (n, 1, 8, 8)
    uniform = torch.rand((n, 1, 8, 8), generator=gen)
    # Independent Gaussian pixels with the real per-pixel mean and std: right brightness, no strokes.
    mean, std = data.train.mean(0), data.train.std(0)  # (1, 8, 8) each
    gaussian = (mean + std * torch.randn((n, 1, 8, 8), generator=gen)).clamp(0, 1)
    return {
        "real digits (train split)": score_samples(real, data, cache_dir),
        "gaussian noise (per-pixel mean/std)": score_samples(gaussian, data, cache_dir),
        "uniform noise": score_samples(uniform, data, cache_dir),
    }


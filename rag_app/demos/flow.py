"""A RealNVP-style normalising flow on 8x8 digits: affine coupling layers and an exact negative log-likelihood.

Read top to bottom: config and presets, the network (the small MLPs that output scales and shifts), the process
(dequantisation, the logit transform and the affine couplings, each with its log-determinant), the loop (train,
sample, evaluate) and the run.

A flow is an invertible map f from images x to Gaussian noise z. The change-of-variables formula gives the exact
log-likelihood log p(x) = log N(f(x); 0, I) + log |det df/dx|, which is what we maximise. An affine coupling
layer (Dinh et al., 2017) keeps half the pixels (mask m) and transforms the other half with a scale and shift
computed from the kept half, so it is trivially invertible and its Jacobian is triangular:
    y = m * x + (1 - m) * (x * exp(s(m * x)) + t(m * x)),   log|det| = sum((1 - m) * s).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from rag_app.demos import metrics, output
from rag_app.demos.data import LEVELS, load_digits, random_batch, to_levels

NAME = "flow"
DIMS = 64  # 8 x 8 pixels, flattened


@dataclass
class Config:
    n_couplings: int = 8  # affine coupling layers; masks alternate so every pixel gets transformed
    hidden: int = 256  # width of each coupling's MLP
    dropout: float = 0.3  # dropout inside the coupling MLPs: 1,438 training digits are easy to memorise
    steps: int = 1500  # optimiser steps
    max_seconds: float | None = 30.0  # wall-clock cap on training (None: none); whichever of the two comes first
    batch_size: int = 128  # images per step
    lr: float = 1e-3  # Adam learning rate
    logit_alpha: float = 0.05  # squeeze [0, 1] into [alpha, 1 - alpha] before the logit, to keep it finite
    temperature: float = 0.8  # sampling draws z ~ N(0, temperature^2 I); < 1 trades diversity for cleaner digits
    n_samples: int = metrics.N_EVAL  # samples generated for the metrics
    seed: int = 0  # seeds torch, numpy, the batch order and the dequantisation noise
    mnist_dir: str | None = None  # folder of MNIST idx files; None: sklearn digits (run_demo: demos.mnist_dir)


PRESETS = {
    "tiny": Config(),
    "full": Config(n_couplings=12, steps=3000, lr=5e-4, max_seconds=None),  # no time cap: stops by steps
}


# ----------------------------------------------------------------------------- network


class CouplingNet(nn.Module):
    """The kept pixels (B, 64) -> log-scale s and shift t for the other pixels, (B, 64) each."""

    def __init__(self, hidden: int, dropout: float = 0.0):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(DIMS, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, 2 * DIMS),
        )
        nn.init.zeros_(self.net[-1].weight)  # every coupling starts as the identity map
        nn.init.zeros_(self.net[-1].bias)
        self.scale = nn.Parameter(torch.ones(1))  # s = scale * tanh(.) keeps exp(s) bounded early in training

    def forward(self, x_kept: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s, t = self.net(x_kept).chunk(2, dim=1)  # (B, 64) each
        return self.scale * torch.tanh(s), t


# ----------------------------------------------------------------------------- process


def coupling_masks(n: int) -> torch.Tensor:
    """(n, 64) binary masks: checkerboard, inverted checkerboard, top half, bottom half, repeated."""
    rows, cols = torch.meshgrid(torch.arange(8), torch.arange(8), indexing="ij")
    checker = ((rows + cols) % 2).float().flatten()
    top = (rows < 4).float().flatten()
    pattern = [checker, 1 - checker, top, 1 - top]
    return torch.stack([pattern[i % 4] for i in range(n)])


class RealNVP(nn.Module):
    """The flow: preprocessing, the stack of affine couplings, and the exact NLL built from their log-determinants."""

    def __init__(self, cfg: Config):
        super().__init__()
        self.nets = nn.ModuleList(CouplingNet(cfg.hidden, cfg.dropout) for _ in range(cfg.n_couplings))
        self.register_buffer("masks", coupling_masks(cfg.n_couplings))  # (K, 64)
        self.alpha = cfg.logit_alpha

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Data-side y (B, 64) in the logit space -> (z (B, 64), log|det dz/dy| (B,))."""
        log_det = torch.zeros(x.shape[0], device=x.device)
        for mask, net in zip(self.masks, self.nets):
            s, t = net(x * mask)
            s, t = s * (1 - mask), t * (1 - mask)  # only the unmasked pixels change
            x = x * mask + (1 - mask) * (x * torch.exp(s) + t)
            log_det = log_det + s.sum(dim=1)
        return x, log_det

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, 64) -> y: undo the couplings in reverse order (each is exactly invertible)."""
        for mask, net in zip(reversed(self.masks), reversed(self.nets)):
            s, t = net(z * mask)  # the kept half is unchanged, so s and t can be recomputed
            s, t = s * (1 - mask), t * (1 - mask)
            z = z * mask + (1 - mask) * ((z - t) * torch.exp(-s))
        return z

    def preprocess(self, x: torch.Tensor, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Dequantise and logit-transform images.

        x (B, 1, 8, 8) on the 17-level grid, noise uniform in [0, 1) of the same shape ->
        (y (B, 64) in logit space, log|det dy/du| (B,)) where u = (level + noise) / 17 lies in [0, 1).
        Adding uniform noise to the integer levels turns the discrete images into a continuous density whose
        likelihood lower-bounds the discrete one (Theis et al., 2016).
        """
        u = ((to_levels(x) + noise) / LEVELS).flatten(1)  # (B, 64) in [0, 1)
        v = self.alpha + (1 - 2 * self.alpha) * u
        y = torch.log(v) - torch.log1p(-v)  # logit
        log_det = (math.log(1 - 2 * self.alpha) - torch.log(v) - torch.log1p(-v)).sum(dim=1)
        return y, log_det

    def postprocess(self, y: torch.Tensor) -> torch.Tensor:
        """Logit space (B, 64) -> images (B, 1, 8, 8) in [0, 1]."""
        u = (torch.sigmoid(y) - self.alpha) / (1 - 2 * self.alpha)
        return u.clamp(0, 1).view(-1, 1, 8, 8)

    def nll_bits_per_dim(self, x: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Exact -log p of dequantised images, per image (B,), in bits per pixel on the 0..16 level scale.

        log p(level + noise) = log p(u) - 64 log 17, so a model as good as a uniform guess scores log2(17) = 4.09.
        """
        y, log_det_pre = self.preprocess(x, noise)
        z, log_det_flow = self(y)
        log_prior = -0.5 * (z.pow(2) + math.log(2 * math.pi)).sum(dim=1)  # (B,) log N(z; 0, I)
        log_p_u = log_prior + log_det_flow + log_det_pre
        return -(log_p_u - DIMS * math.log(LEVELS)) / (DIMS * math.log(2))


# ----------------------------------------------------------------------------- loop


def train(cfg: Config, device: str = "cpu",
          progress: Callable[[int, int, dict], None] | None = None) -> tuple[RealNVP, list[float]]:
    """Maximum likelihood: minimise the exact NLL (bits/dim) of dequantised batches, for cfg.steps or
    cfg.max_seconds; returns (model, per-step losses)."""
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    x_train = load_digits(cfg.mnist_dir).train.to(device)  # (N, 1, 8, 8)
    model = RealNVP(cfg).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    losses = []
    budget = output.Budget(cfg.steps, cfg.max_seconds, progress)
    for _ in budget:  # stops after cfg.steps steps or cfg.max_seconds seconds, whichever comes first
        x = random_batch(x_train, cfg.batch_size, gen)  # (B, 1, 8, 8)
        noise = torch.rand(x.shape, generator=gen).to(device)  # dequantisation noise
        loss = model.nll_bits_per_dim(x, noise).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)  # rare large steps would blow up exp(s)
        opt.step()
        losses.append(loss.item())
        budget.report({"loss": losses[-1]})
    return model.eval(), losses


@torch.no_grad()
def sample(model: RealNVP, n: int, temperature: float = 1.0, seed: int = 0) -> torch.Tensor:
    """Draw z ~ N(0, temperature^2 I) and invert the flow: (n, 1, 8, 8) in [0, 1]."""
    gen = torch.Generator().manual_seed(seed)
    z = temperature * torch.randn((n, DIMS), generator=gen).to(model.masks.device)  # (n, 64)
    return model.postprocess(model.inverse(z))


@torch.no_grad()
def heldout_bits_per_dim(model: RealNVP, cfg: Config) -> float:
    """Exact NLL of the held-out digits (one seeded dequantisation), in bits per pixel."""
    x = load_digits(cfg.mnist_dir).heldout.to(model.masks.device)
    noise = torch.rand(x.shape, generator=torch.Generator().manual_seed(cfg.seed)).to(x.device)
    return float(model.nll_bits_per_dim(x, noise).mean())


@torch.no_grad()
def evaluate(model: RealNVP, cfg: Config, cache_dir: Path | None = None) -> dict:  # same as vae.py
    start = time.perf_counter()
    samples = sample(model, cfg.n_samples, cfg.temperature, seed=cfg.seed)
    speed = cfg.n_samples / (time.perf_counter() - start)
    return {
        "heldout_bits_per_dim": round(heldout_bits_per_dim(model, cfg), 4),
        **metrics.score_samples(samples, load_digits(cfg.mnist_dir), cache_dir),
        "samples_per_s": round(speed, 1),
    }


def load_checkpoint(out_dir: str | Path, device: str = "cpu") -> tuple[RealNVP, Config]:  # same as vae.py
    """Rebuild the model of a finished run from its model.safetensors and config.json."""
    state, description = output.read_run(Path(out_dir), NAME)
    cfg = Config(**description["config"])
    model = RealNVP(cfg)
    model.load_state_dict(state)
    return model.to(device).eval(), cfg


# same as vae.py
def run(cfg: Config, out_dir: Path, preset: str, device: str = "cpu",
        progress: Callable[[int, int, dict], None] | None = None,
        cache_dir: Path | None = None) -> tuple[dict, dict[str, Path]]:
    """Train, evaluate, and write samples.png, curve.png, metrics.json, model.safetensors and config.json."""
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    model, losses = train(cfg, device, progress)
    result = {**output.budget_summary(cfg, len(losses), time.perf_counter() - start),
              "final_loss": round(float(np.mean(losses[-50:])), 4), **evaluate(model, cfg, cache_dir)}
    output.save_grid(sample(model, 64, cfg.temperature, seed=cfg.seed), out_dir / "samples.png")
    output.save_curve({"NLL (bits / dim)": losses}, out_dir / "curve.png", "RealNVP training", ylabel="bits / dim")
    files = output.save_run(out_dir, NAME, preset, cfg, len(losses), model.state_dict(), result)
    return result, files

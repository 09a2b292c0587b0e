"""A plain convolutional autoencoder on 8x8 digits, used as a generator by sampling its latent space.

Read top to bottom: config and presets, the network (encoder + decoder), the process (fitting a Gaussian to the
training codes, which is what turns a compressor into a generator), the loop (train, sample, evaluate) and the
run that writes the five output files. An autoencoder is trained only to reconstruct; nothing makes its latent
space easy to sample, so its samples are the baseline the VAE improves on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from rag_app.demos import metrics, output
from rag_app.demos.data import load_digits, random_batch

NAME = "autoencoder"


@dataclass
class Config:
    latent_dim: int = 8  # size of the bottleneck code z
    channels: int = 32  # width of the first conv layer (the second has twice as many)
    hidden: int = 128  # width of the fully connected layer around the code
    steps: int = 1500  # optimiser steps
    max_seconds: float | None = 30.0  # wall-clock cap on training (None: none); whichever of the two comes first
    batch_size: int = 128  # images per step
    lr: float = 2e-3  # Adam learning rate
    n_samples: int = metrics.N_EVAL  # samples generated for the metrics
    seed: int = 0  # seeds torch, numpy and the batch order
    mnist_dir: str | None = None  # folder of MNIST idx files; None: sklearn digits (run_demo: demos.mnist_dir)


PRESETS = {
    "tiny": Config(),
    "full": Config(latent_dim=12, hidden=256, steps=3000, max_seconds=None),  # no time cap: stops by steps
}


# ----------------------------------------------------------------------------- network


class Encoder(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        c = cfg.channels
        self.net = nn.Sequential(
            nn.Conv2d(1, c, 3, padding=1), nn.ReLU(),  # (B, c, 8, 8)
            nn.Conv2d(c, 2 * c, 4, stride=2, padding=1), nn.ReLU(),  # (B, 2c, 4, 4)
            nn.Flatten(),  # (B, 2c * 16)
            nn.Linear(2 * c * 16, cfg.hidden), nn.ReLU(),  # (B, hidden)
            nn.Linear(cfg.hidden, cfg.latent_dim),  # (B, latent)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Decoder(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        c = cfg.channels
        self.fc = nn.Sequential(
            nn.Linear(cfg.latent_dim, cfg.hidden), nn.ReLU(),
            nn.Linear(cfg.hidden, 2 * c * 16), nn.ReLU(),  # (B, 2c * 16)
        )
        self.deconv = nn.Sequential(
            nn.ConvTranspose2d(2 * c, c, 4, stride=2, padding=1), nn.ReLU(),  # (B, c, 8, 8)
            nn.Conv2d(c, 1, 3, padding=1),  # (B, 1, 8, 8) logits of the pixel intensities
        )
        self.channels = c

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.fc(z).view(-1, 2 * self.channels, 4, 4)  # (B, 2c, 4, 4)
        return self.deconv(h)


class Autoencoder(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        self.encoder, self.decoder = Encoder(cfg), Decoder(cfg)
        # The Gaussian fitted to the training codes after training (see `fit_latent_gaussian`); saved with the weights.
        self.register_buffer("latent_mean", torch.zeros(cfg.latent_dim))
        self.register_buffer("latent_chol", torch.eye(cfg.latent_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruction logits of x (B, 1, 8, 8) in [0, 1]; sigmoid gives intensities."""
        return self.decoder(self.encoder(x))


# ----------------------------------------------------------------------------- process


@torch.no_grad()
def fit_latent_gaussian(model: Autoencoder, x: torch.Tensor) -> None:
    """Fit N(mean, cov) to the codes of the training images; sampling it is how the autoencoder generates."""
    z = model.encoder(x)  # (N, latent)
    cov = torch.cov(z.T) + 1e-4 * torch.eye(z.shape[1], device=z.device)  # (latent, latent)
    model.latent_mean.copy_(z.mean(0))
    model.latent_chol.copy_(torch.linalg.cholesky(cov))


# ----------------------------------------------------------------------------- loop


def train(cfg: Config, device: str = "cpu",
          progress: Callable[[int, int, dict], None] | None = None) -> tuple[Autoencoder, list[float]]:
    """Minimise per-pixel binary cross-entropy between images and their reconstructions, for cfg.steps or
    cfg.max_seconds; returns (model, per-step losses)."""
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    data = load_digits(cfg.mnist_dir)
    x_train = data.train.to(device)  # (N, 1, 8, 8) in [0, 1]
    model = Autoencoder(cfg).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    losses = []
    budget = output.Budget(cfg.steps, cfg.max_seconds, progress)
    for _ in budget:  # stops after cfg.steps steps or cfg.max_seconds seconds, whichever comes first
        x = random_batch(x_train, cfg.batch_size, gen)  # (B, 1, 8, 8)
        loss = F.binary_cross_entropy_with_logits(model(x), x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        budget.report({"loss": losses[-1]})
    model.eval()
    fit_latent_gaussian(model, x_train)
    return model, losses


@torch.no_grad()
def sample(model: Autoencoder, n: int, seed: int = 0) -> torch.Tensor:
    """Decode n codes drawn from the fitted Gaussian: (n, 1, 8, 8) in [0, 1]."""
    gen = torch.Generator().manual_seed(seed)
    eps = torch.randn((n, model.latent_mean.numel()), generator=gen).to(model.latent_mean.device)  # (n, latent)
    z = model.latent_mean + eps @ model.latent_chol.T  # (n, latent)
    return torch.sigmoid(model.decoder(z))


@torch.no_grad()
def evaluate(model: Autoencoder, cfg: Config, cache_dir: Path | None = None) -> dict:  # same as vae.py, with MSE
    data = load_digits(cfg.mnist_dir)
    device = model.latent_mean.device
    x = data.heldout.to(device)
    start = time.perf_counter()
    samples = sample(model, cfg.n_samples, seed=cfg.seed)
    speed = cfg.n_samples / (time.perf_counter() - start)
    return {
        "heldout_recon_mse": round(F.mse_loss(torch.sigmoid(model(x)), x).item(), 5),
        **metrics.score_samples(samples, data, cache_dir),
        "samples_per_s": round(speed, 1),
    }


def load_checkpoint(out_dir: str | Path, device: str = "cpu") -> tuple[Autoencoder, Config]:  # same as vae.py
    """Rebuild the model of a finished run from its model.safetensors and config.json."""
    state, description = output.read_run(Path(out_dir), NAME)
    cfg = Config(**description["config"])
    model = Autoencoder(cfg)
    model.load_state_dict(state)
    return model.to(device).eval(), cfg


# same as vae.py (the shared tail is copied on purpose: each demo reads top to bottom on its own)
def run(cfg: Config, out_dir: Path, preset: str, device: str = "cpu",
        progress: Callable[[int, int, dict], None] | None = None,
        cache_dir: Path | None = None) -> tuple[dict, dict[str, Path]]:
    """Train, evaluate, and write samples.png, curve.png, metrics.json, model.safetensors and config.json."""
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    model, losses = train(cfg, device, progress)
    result = {**output.budget_summary(cfg, len(losses), time.perf_counter() - start),
              "final_loss": round(float(np.mean(losses[-50:])), 5), **evaluate(model, cfg, cache_dir)}
    output.save_grid(sample(model, 64, seed=cfg.seed), out_dir / "samples.png")
    output.save_curve({"reconstruction BCE": losses}, out_dir / "curve.png", "autoencoder training")
    files = output.save_run(out_dir, NAME, preset, cfg, len(losses), model.state_dict(), result)
    return result, files


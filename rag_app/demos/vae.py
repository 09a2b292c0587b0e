"""A variational autoencoder (VAE) on 8x8 digits, with an exact discrete likelihood so its ELBO is in bits/dim.

Read top to bottom: config and presets, the network (encoder to q(z|x), decoder to p(x|z)), the process (the
reparameterisation trick and the evidence lower bound, ELBO), the loop (train, sample, evaluate) and the run.

The decoder outputs, for every pixel, a categorical distribution over the 17 grey levels of the digits, so
-ELBO is an upper bound on the true negative log-likelihood of the discrete images. Divided by 64 pixels and
ln 2 it is in bits per dimension, the same unit as the flow demo (a uniform guess costs log2(17) = 4.09).
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
from torch.nn import functional as F

from rag_app.demos import metrics, output
from rag_app.demos.data import LEVELS, load_digits, random_batch, to_levels

NAME = "vae"


@dataclass
class Config:
    latent_dim: int = 8  # size of z; the prior is N(0, I)
    channels: int = 32  # width of the first conv layer (the second has twice as many)
    hidden: int = 128  # width of the fully connected layer around z
    steps: int = 1000  # optimiser steps; the held-out ELBO worsens beyond ~1,000 (1,438 digits get memorised)
    max_seconds: float | None = 30.0  # wall-clock cap on training (None: none); whichever of the two comes first
    batch_size: int = 128  # images per step
    lr: float = 2e-3  # Adam learning rate
    kl_warmup: int = 300  # steps over which the KL weight ramps from 0 to 1 (avoids early posterior collapse)
    eval_z_samples: int = 8  # z draws per held-out image when estimating the held-out ELBO
    n_samples: int = metrics.N_EVAL  # samples generated for the metrics
    seed: int = 0  # seeds torch, numpy and the batch order
    mnist_dir: str | None = None  # folder of MNIST idx files; None: sklearn digits (run_demo: demos.mnist_dir)


PRESETS = {
    "tiny": Config(),
    # Wider, same early stop: 3,000 steps overfit to 2.99 bits/dim. No time cap: full runs stop by steps.
    "full": Config(latent_dim=16, hidden=256, max_seconds=None),
}


# ----------------------------------------------------------------------------- network


class Encoder(nn.Module):
    """x -> (mu, log_var) of the Gaussian posterior q(z|x)."""

    def __init__(self, cfg: Config):
        super().__init__()
        c = cfg.channels
        self.net = nn.Sequential(
            nn.Conv2d(1, c, 3, padding=1), nn.ReLU(),  # (B, c, 8, 8)
            nn.Conv2d(c, 2 * c, 4, stride=2, padding=1), nn.ReLU(),  # (B, 2c, 4, 4)
            nn.Flatten(),  # (B, 2c * 16)
            nn.Linear(2 * c * 16, cfg.hidden), nn.ReLU(),  # (B, hidden)
            nn.Linear(cfg.hidden, 2 * cfg.latent_dim),  # (B, 2 * latent)
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, log_var = self.net(x).chunk(2, dim=1)  # (B, latent) each
        return mu, log_var


class Decoder(nn.Module):
    """z -> logits of p(x|z): one categorical over the 17 grey levels per pixel."""

    def __init__(self, cfg: Config):
        super().__init__()
        c = cfg.channels
        self.fc = nn.Sequential(
            nn.Linear(cfg.latent_dim, cfg.hidden), nn.ReLU(),
            nn.Linear(cfg.hidden, 2 * c * 16), nn.ReLU(),  # (B, 2c * 16)
        )
        self.deconv = nn.Sequential(
            nn.ConvTranspose2d(2 * c, c, 4, stride=2, padding=1), nn.ReLU(),  # (B, c, 8, 8)
            nn.Conv2d(c, LEVELS, 3, padding=1),  # (B, 17, 8, 8) logits over grey levels
        )
        self.channels = c

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.fc(z).view(-1, 2 * self.channels, 4, 4)  # (B, 2c, 4, 4)
        return self.deconv(h)


class VAE(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        self.encoder, self.decoder = Encoder(cfg), Decoder(cfg)
        self.latent_dim = cfg.latent_dim


# ----------------------------------------------------------------------------- process


def reparameterise(mu: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """z = mu + sigma * eps with eps ~ N(0, I): a sample of q(z|x) that gradients can flow through."""
    return mu + torch.exp(0.5 * log_var) * torch.randn_like(mu)


def negative_elbo(model: VAE, x: torch.Tensor, kl_weight: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(-ELBO, reconstruction NLL, KL), each in nats per image, averaged over the batch x (B, 1, 8, 8) in [0, 1].

    -ELBO = E_q[-log p(x|z)] + KL(q(z|x) || N(0, I)), one z sample per image.
    """
    mu, log_var = model.encoder(x)  # (B, latent) each
    z = reparameterise(mu, log_var)  # (B, latent)
    logits = model.decoder(z)  # (B, 17, 8, 8)
    recon = F.cross_entropy(logits, to_levels(x)[:, 0], reduction="none").sum(dim=(1, 2))  # (B,)
    kl = 0.5 * (mu.pow(2) + log_var.exp() - 1 - log_var).sum(dim=1)  # (B,) closed form for Gaussians
    return (recon + kl_weight * kl).mean(), recon.mean(), kl.mean()


def decode_mean(model: VAE, z: torch.Tensor) -> torch.Tensor:
    """The expected image under p(x|z): probabilities times grey levels, in [0, 1], (B, 1, 8, 8)."""
    probs = model.decoder(z).softmax(dim=1)  # (B, 17, 8, 8)
    levels = torch.arange(LEVELS, device=z.device, dtype=probs.dtype).view(1, -1, 1, 1) / (LEVELS - 1)
    return (probs * levels).sum(dim=1, keepdim=True)  # (B, 1, 8, 8)


# ----------------------------------------------------------------------------- loop


def train(cfg: Config, device: str = "cpu",
          progress: Callable[[int, int, dict], None] | None = None) -> tuple[VAE, list[float]]:
    """Minimise -ELBO (with a KL warm-up) for cfg.steps or cfg.max_seconds; returns (model, per-step -ELBO)."""
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    x_train = load_digits(cfg.mnist_dir).train.to(device)  # (N, 1, 8, 8)
    model = VAE(cfg).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    losses = []  # -ELBO in nats / image, one per step
    budget = output.Budget(cfg.steps, cfg.max_seconds, progress)
    for step in budget:  # stops after cfg.steps steps or cfg.max_seconds seconds, whichever comes first
        x = random_batch(x_train, cfg.batch_size, gen)  # (B, 1, 8, 8)
        kl_weight = min(1.0, step / max(1, cfg.kl_warmup))
        loss, recon, kl = negative_elbo(model, x, kl_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append((recon + kl).item())  # the full -ELBO, comparable across the warm-up
        budget.report({"loss": losses[-1], "kl": kl.item()})
    return model.eval(), losses


@torch.no_grad()
def sample(model: VAE, n: int, seed: int = 0) -> torch.Tensor:
    """Decode n draws of the prior z ~ N(0, I) to mean images: (n, 1, 8, 8) in [0, 1]."""
    gen = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    z = torch.randn((n, model.latent_dim), generator=gen).to(device)  # (n, latent)
    return decode_mean(model, z)


@torch.no_grad()
def heldout_bits_per_dim(model: VAE, cfg: Config) -> float:
    """-ELBO on the held-out digits, averaged over several z draws, in bits per pixel."""
    torch.manual_seed(cfg.seed)
    x = load_digits(cfg.mnist_dir).heldout.to(next(model.parameters()).device)
    nll = np.mean([negative_elbo(model, x)[0].item() for _ in range(cfg.eval_z_samples)])
    return float(nll) / (x[0].numel() * math.log(2))


# The tail from here (evaluate, load_checkpoint, run) is copied into every demo on purpose, with a
# "same as vae.py" note, so that each file reads top to bottom on its own: change the copies together.


@torch.no_grad()
def evaluate(model: VAE, cfg: Config, cache_dir: Path | None = None) -> dict:
    """Held-out -ELBO, then the scorer's figures and the speed of cfg.n_samples samples (cache_dir: the scorer's)."""
    start = time.perf_counter()
    samples = sample(model, cfg.n_samples, seed=cfg.seed)
    speed = cfg.n_samples / (time.perf_counter() - start)
    return {
        "heldout_bits_per_dim": round(heldout_bits_per_dim(model, cfg), 4),
        **metrics.score_samples(samples, load_digits(cfg.mnist_dir), cache_dir),
        "samples_per_s": round(speed, 1),
    }


def load_checkpoint(out_dir: str | Path, device: str = "cpu") -> tuple[VAE, Config]:
    """Rebuild the model of a finished run from its model.safetensors and config.json."""
    state, description = output.read_run(Path(out_dir), NAME)
    cfg = Config(**description["config"])
    model = VAE(cfg)
    model.load_state_dict(state)
    return model.to(device).eval(), cfg


def run(cfg: Config, out_dir: Path, preset: str, device: str = "cpu",
        progress: Callable[[int, int, dict], None] | None = None,
        cache_dir: Path | None = None) -> tuple[dict, dict[str, Path]]:
    """Train, evaluate, and write samples.png, curve.png, metrics.json, model.safetensors and config.json.

    metrics.json starts with how training ended (`output.budget_summary`: stopped_by "steps" or "time", steps
    done, seconds); cache_dir is where the digit scorer is cached (run_demo passes `<home>/cache`).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    model, losses = train(cfg, device, progress)
    result = {**output.budget_summary(cfg, len(losses), time.perf_counter() - start),
              "final_loss": round(float(np.mean(losses[-50:])), 4), **evaluate(model, cfg, cache_dir)}
    output.save_grid(sample(model, 64, seed=cfg.seed), out_dir / "samples.png")
    output.save_curve({"-ELBO (nats / image)": losses}, out_dir / "curve.png", "VAE training")
    files = output.save_run(out_dir, NAME, preset, cfg, len(losses), model.state_dict(), result)
    return result, files

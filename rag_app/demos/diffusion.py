"""A denoising diffusion probabilistic model (DDPM) on 8x8 digits, with a small U-Net and a DDIM sampler.

Read top to bottom: config and presets, the network (a two-level U-Net that predicts the noise in an image),
the process (a noise schedule with `add_noise` and `step`, shaped like the schedulers of Hugging Face diffusers,
plus a DDIM scheduler that samples in few steps), the loop (train, sample, evaluate) and the run.

Training is one line of maths: pick a random timestep t, noise a clean image to x_t = sqrt(abar_t) x_0 +
sqrt(1 - abar_t) eps, and regress the network's guess of eps with a mean squared error (Ho et al., 2020).
Sampling starts from pure noise and applies the scheduler's `step` from t = T-1 down to 0.
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
from rag_app.demos.data import load_digits, random_batch, to_signed, to_unit

NAME = "diffusion"


@dataclass
class Config:
    channels: int = 16  # U-Net width at 8x8; the 4x4 level has twice as many
    timesteps: int = 1000  # T, the number of noising steps in training
    beta_start: float = 1e-4  # noise variance added at the first step (Ho et al.)
    beta_end: float = 0.02  # noise variance added at the last step (Ho et al.)
    steps: int = 1200  # optimiser steps
    max_seconds: float | None = 25.0  # wall-clock cap on training (None: none); whichever of the two comes first
    batch_size: int = 64  # images per step
    lr: float = 2e-3  # AdamW learning rate, cosine-decayed to 10% of it over the budget (steps or seconds)
    sampler: str = "ddim"  # "ddim" (few deterministic steps) or "ddpm" (all T ancestral steps)
    sample_steps: int = 50  # DDIM steps when sampling
    n_samples: int = metrics.N_EVAL  # samples generated for the metrics
    seed: int = 0  # seeds torch, numpy and the batch order
    mnist_dir: str | None = None  # folder of MNIST idx files; None: sklearn digits (run_demo: demos.mnist_dir)


PRESETS = {
    "tiny": Config(),
    "full": Config(steps=3500, lr=1e-3, max_seconds=None),  # no time cap: stops by steps
}


# ----------------------------------------------------------------------------- network


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of integer timesteps (B,) -> (B, dim), as in the Transformer and DDPM papers."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device) / half)  # (dim/2,)
    angles = t.float()[:, None] * freqs[None]  # (B, dim/2)
    return torch.cat([angles.sin(), angles.cos()], dim=1)  # (B, dim)


class ResBlock(nn.Module):
    """GroupNorm -> SiLU -> conv, with the timestep embedding added in between, plus a residual connection."""

    def __init__(self, c_in: int, c_out: int, t_dim: int):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(8, c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.time = nn.Linear(t_dim, c_out)
        self.norm2, self.conv2 = nn.GroupNorm(8, c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, t_emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))  # (B, c_out, H, W)
        h = h + self.time(t_emb)[:, :, None, None]  # broadcast the timestep over all pixels
        h = self.conv2(F.silu(self.norm2(h)))  # (B, c_out, H, W)
        return h + self.skip(x)


class UNet(nn.Module):
    """eps_theta(x_t, t): two resolution levels (8x8 and 4x4) with skip connections between them."""

    def __init__(self, cfg: Config):
        super().__init__()
        c, t_dim = cfg.channels, 4 * cfg.channels
        self.c = c
        self.time_mlp = nn.Sequential(nn.Linear(c, t_dim), nn.SiLU(), nn.Linear(t_dim, t_dim))
        self.conv_in = nn.Conv2d(1, c, 3, padding=1)
        self.down1 = ResBlock(c, c, t_dim)
        self.downsample = nn.Conv2d(c, c, 3, stride=2, padding=1)
        self.down2 = ResBlock(c, 2 * c, t_dim)
        self.mid = ResBlock(2 * c, 2 * c, t_dim)
        self.up2 = ResBlock(4 * c, 2 * c, t_dim)
        self.upsample = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(2 * c, 2 * c, 3, padding=1))
        self.up1 = ResBlock(3 * c, c, t_dim)
        self.out = nn.Sequential(nn.GroupNorm(8, c), nn.SiLU(), nn.Conv2d(c, 1, 3, padding=1))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t_emb = self.time_mlp(timestep_embedding(t, self.c))  # (B, 4c)
        h1 = self.down1(self.conv_in(x), t_emb)  # (B, c, 8, 8)
        h2 = self.down2(self.downsample(h1), t_emb)  # (B, 2c, 4, 4)
        h = self.mid(h2, t_emb)  # (B, 2c, 4, 4)
        h = self.up2(torch.cat([h, h2], dim=1), t_emb)  # (B, 2c, 4, 4)
        h = self.upsample(h)  # (B, 2c, 8, 8)
        h = self.up1(torch.cat([h, h1], dim=1), t_emb)  # (B, c, 8, 8)
        return self.out(h)  # (B, 1, 8, 8) predicted noise


# ----------------------------------------------------------------------------- process


class DDPMScheduler:
    """The forward (noising) process and the ancestral reverse step of Ho et al. (2020).

    beta_t rises linearly from beta_start to beta_end over T steps; alpha_t = 1 - beta_t and
    abar_t = prod_{s<=t} alpha_s, so x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps in one jump.
    """

    def __init__(self, timesteps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02):
        self.num_train_timesteps = timesteps
        self.betas = torch.linspace(beta_start, beta_end, timesteps, dtype=torch.float64)  # (T,)
        self.alphas = 1.0 - self.betas
        self.alphas_cumprod = torch.cumprod(self.alphas, dim=0)  # (T,) abar_t
        self.timesteps = torch.arange(timesteps - 1, -1, -1)  # the order `step` is applied in

    def _at(self, values: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """values[t] reshaped to broadcast over images like (B, C, H, W)."""
        out = values.to(like.device)[t.to(like.device)].to(like.dtype)
        return out.view(-1, *([1] * (like.dim() - 1)))

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """q(x_t | x_0): (B, C, H, W) clean images, same-shape noise, (B,) timesteps -> noisy x_t."""
        abar = self._at(self.alphas_cumprod, t, x0)
        return abar.sqrt() * x0 + (1 - abar).sqrt() * noise

    def predict_x0(self, eps: torch.Tensor, t: int, x_t: torch.Tensor) -> torch.Tensor:
        """Invert add_noise with the predicted noise, clipped to the data range [-1, 1]."""
        abar = float(self.alphas_cumprod[t])
        return ((x_t - math.sqrt(1 - abar) * eps) / math.sqrt(abar)).clamp(-1, 1)

    def step(self, eps: torch.Tensor, t: int, x_t: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """One ancestral step x_t -> x_{t-1} from the posterior q(x_{t-1} | x_t, x_0 = predicted x_0)."""
        abar = float(self.alphas_cumprod[t])
        abar_prev = float(self.alphas_cumprod[t - 1]) if t > 0 else 1.0
        beta = float(self.betas[t])
        x0 = self.predict_x0(eps, t, x_t)
        mean = (math.sqrt(abar_prev) * beta / (1 - abar)) * x0 + (math.sqrt(1 - beta) * (1 - abar_prev) / (1 - abar)) * x_t
        if t == 0:
            return mean
        variance = beta * (1 - abar_prev) / (1 - abar)  # beta-tilde, the posterior variance
        noise = torch.randn(x_t.shape, generator=generator).to(x_t.device)
        return mean + math.sqrt(variance) * noise


class DDIMScheduler(DDPMScheduler):
    """Deterministic DDIM sampling (Song et al., 2021) on a subsequence of the trained timesteps.

    Same trained network, same abar_t; only the reverse step changes, which is why DDIM needs no retraining.
    """

    def set_timesteps(self, num_inference_steps: int) -> None:
        stride = self.num_train_timesteps // num_inference_steps
        self.timesteps = torch.arange(num_inference_steps - 1, -1, -1) * stride  # e.g. 980, 960, ..., 0
        self.stride = stride

    def step(self, eps: torch.Tensor, t: int, x_t: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """x_t -> x_{t - stride} with eta = 0: re-noise the predicted x_0 with the predicted noise."""
        prev = t - self.stride
        abar_prev = float(self.alphas_cumprod[prev]) if prev >= 0 else 1.0
        x0 = self.predict_x0(eps, t, x_t)
        abar = float(self.alphas_cumprod[t])
        eps = (x_t - math.sqrt(abar) * x0) / math.sqrt(1 - abar)  # noise consistent with the clipped x_0
        return math.sqrt(abar_prev) * x0 + math.sqrt(1 - abar_prev) * eps


def make_scheduler(cfg: Config, sampler: str | None = None) -> DDPMScheduler:
    sampler = sampler or cfg.sampler
    if sampler not in ("ddim", "ddpm"):
        raise ValueError(f"sampler must be 'ddim' or 'ddpm', not {sampler!r}")
    if sampler == "ddpm":
        return DDPMScheduler(cfg.timesteps, cfg.beta_start, cfg.beta_end)
    scheduler = DDIMScheduler(cfg.timesteps, cfg.beta_start, cfg.beta_end)
    scheduler.set_timesteps(cfg.sample_steps)
    return scheduler


# ----------------------------------------------------------------------------- loop


def cosine_lr(lr: float, fraction: float, final: float = 0.1) -> float:
    """Cosine decay from lr at fraction 0 to final * lr at fraction 1 (the share of the training budget used)."""
    return lr * (final + (1 - final) * 0.5 * (1 + math.cos(math.pi * fraction)))


def train(cfg: Config, device: str = "cpu",
          progress: Callable[[int, int, dict], None] | None = None) -> tuple[UNet, list[float]]:
    """Regress the noise added at random timesteps (the "simple" DDPM loss), for cfg.steps or cfg.max_seconds;
    returns (model, per-step losses)."""
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    x_train = to_signed(load_digits(cfg.mnist_dir).train).to(device)  # (N, 1, 8, 8) in [-1, 1]
    scheduler = DDPMScheduler(cfg.timesteps, cfg.beta_start, cfg.beta_end)
    model = UNet(cfg).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
    losses = []
    budget = output.Budget(cfg.steps, cfg.max_seconds, progress)
    for _ in budget:  # stops after cfg.steps steps or cfg.max_seconds seconds, whichever comes first
        for group in opt.param_groups:  # the decay follows whichever limit is nearer, so it ends on time
            group["lr"] = cosine_lr(cfg.lr, budget.fraction())
        x0 = random_batch(x_train, cfg.batch_size, gen)  # (B, 1, 8, 8)
        t = torch.randint(0, cfg.timesteps, (cfg.batch_size,), generator=gen).to(device)  # (B,)
        noise = torch.randn(x0.shape, generator=gen).to(device)  # (B, 1, 8, 8)
        loss = F.mse_loss(model(scheduler.add_noise(x0, noise, t), t), noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        budget.report({"loss": losses[-1]})
    return model.eval(), losses


@torch.no_grad()
def sample(model: UNet, cfg: Config, n: int, seed: int = 0, sampler: str | None = None) -> torch.Tensor:
    """Start from x_T ~ N(0, I) and apply the scheduler's steps: (n, 1, 8, 8) in [0, 1]."""
    gen = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    scheduler = make_scheduler(cfg, sampler)
    x = torch.randn((n, 1, 8, 8), generator=gen).to(device)  # (n, 1, 8, 8) pure noise
    for t in scheduler.timesteps.tolist():
        eps = model(x, torch.full((n,), t, device=device, dtype=torch.long))  # (n, 1, 8, 8)
        x = scheduler.step(eps, t, x, generator=gen)
    return to_unit(x)


@torch.no_grad()
def evaluate(model: UNet, cfg: Config, cache_dir: Path | None = None) -> dict:  # same as vae.py, without an NLL
    start = time.perf_counter()
    samples = sample(model, cfg, cfg.n_samples, seed=cfg.seed)
    speed = cfg.n_samples / (time.perf_counter() - start)
    return {**metrics.score_samples(samples, load_digits(cfg.mnist_dir), cache_dir), "samples_per_s": round(speed, 1),
            "sampler": cfg.sampler, "sampler_steps": cfg.sample_steps if cfg.sampler == "ddim" else cfg.timesteps}


def load_checkpoint(out_dir: str | Path, device: str = "cpu") -> tuple[UNet, Config]:  # same as vae.py
    """Rebuild the model of a finished run from its model.safetensors and config.json."""
    state, description = output.read_run(Path(out_dir), NAME)
    cfg = Config(**description["config"])
    model = UNet(cfg)
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
    output.save_grid(sample(model, cfg, 64, seed=cfg.seed), out_dir / "samples.png")
    output.save_curve({"noise MSE": losses}, out_dir / "curve.png", "DDPM training")
    files = output.save_run(out_dir, NAME, preset, cfg, len(losses), model.state_dict(), result)
    return result, files

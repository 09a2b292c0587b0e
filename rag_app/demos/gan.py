"""A DCGAN-style generative adversarial network (GAN) on 8x8 digits, with remedies against mode collapse.

Read top to bottom: config and presets, the networks (generator and discriminator), the process (the
adversarial losses, with label smoothing), the loop (train, sample, evaluate) and the run.

A GAN has no likelihood: the generator G maps noise z to images, the discriminator D scores real against
generated images, and each is trained against the other. Left alone this game is unstable and G tends to
collapse onto a few digits that fool D. This demo uses three standard remedies, each named where it acts:

1. Spectral normalisation of every D layer (Miyato et al., 2018) bounds D's Lipschitz constant, so its
   gradients to G stay informative instead of saturating.
2. A minibatch standard-deviation feature (Karras et al., 2018, ProGAN): D sees how varied the batch is, so a
   collapsed batch of near-identical fakes is easy to spot, and G is pushed to vary its output.
3. One-sided label smoothing (Salimans et al., 2016): D's target for real images is 0.9, not 1, so D cannot
   become overconfident and starve G of gradient.
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
from torch.nn.utils import spectral_norm

from rag_app.demos import metrics, output
from rag_app.demos.data import load_digits, random_batch, to_signed, to_unit

NAME = "gan"


@dataclass
class Config:
    z_dim: int = 32  # size of the generator's input noise z ~ N(0, I)
    channels: int = 32  # width of the 8x8 layers; the 4x4 layers have twice as many
    steps: int = 1000  # training steps (each updates D once, then G once)
    max_seconds: float | None = 30.0  # wall-clock cap on training (None: none); whichever of the two comes first
    batch_size: int = 64  # real and fake images per step
    lr: float = 5e-4  # Adam learning rate for both networks
    betas: tuple[float, float] = (0.5, 0.999)  # Adam betas recommended by the DCGAN paper
    real_label: float = 0.9  # one-sided label smoothing: D's target for real images
    minibatch_std: bool = True  # append the minibatch standard-deviation feature map in D
    n_samples: int = metrics.N_EVAL  # samples generated for the metrics
    seed: int = 0  # seeds torch, numpy and the batch order
    mnist_dir: str | None = None  # folder of MNIST idx files; None: sklearn digits (run_demo: demos.mnist_dir)


PRESETS = {
    "tiny": Config(),
    "full": Config(steps=2500, lr=3e-4, max_seconds=None),  # no time cap: stops by steps
}


# ----------------------------------------------------------------------------- networks


class Generator(nn.Module):
    """z (B, z_dim) -> image (B, 1, 8, 8) in [-1, 1]: project, then upsample with a transposed conv (DCGAN)."""

    def __init__(self, cfg: Config):
        super().__init__()
        c = cfg.channels
        self.project = nn.Sequential(nn.Linear(cfg.z_dim, 2 * c * 4 * 4), nn.BatchNorm1d(2 * c * 4 * 4), nn.ReLU())
        self.net = nn.Sequential(
            nn.ConvTranspose2d(2 * c, c, 4, stride=2, padding=1), nn.BatchNorm2d(c), nn.ReLU(),  # (B, c, 8, 8)
            nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(),  # (B, c, 8, 8)
            nn.Conv2d(c, 1, 3, padding=1), nn.Tanh(),  # (B, 1, 8, 8)
        )
        self.channels = c

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.project(z).view(-1, 2 * self.channels, 4, 4)  # (B, 2c, 4, 4)
        return self.net(h)


def minibatch_std(h: torch.Tensor) -> torch.Tensor:
    """Append one feature map holding the average standard deviation of the features across the batch."""
    std = h.std(dim=0, unbiased=False).mean()  # scalar: how different the images of this batch are
    return torch.cat([h, std.expand(h.shape[0], 1, *h.shape[2:])], dim=1)  # (B, C + 1, H, W)


class Discriminator(nn.Module):
    """image (B, 1, 8, 8) -> realness logit (B,); every layer spectrally normalised (remedy 1)."""

    def __init__(self, cfg: Config):
        super().__init__()
        c = cfg.channels
        self.net = nn.Sequential(
            spectral_norm(nn.Conv2d(1, c, 3, padding=1)), nn.LeakyReLU(0.2),  # (B, c, 8, 8)
            spectral_norm(nn.Conv2d(c, 2 * c, 4, stride=2, padding=1)), nn.LeakyReLU(0.2),  # (B, 2c, 4, 4)
        )
        self.use_mbstd = cfg.minibatch_std
        extra = 1 if cfg.minibatch_std else 0
        self.head = spectral_norm(nn.Linear((2 * c + extra) * 4 * 4, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.net(x)  # (B, 2c, 4, 4)
        if self.use_mbstd:
            h = minibatch_std(h)  # (B, 2c + 1, 4, 4), remedy 2
        return self.head(h.flatten(1)).squeeze(1)  # (B,)


class GAN(nn.Module):
    """Both networks in one module, so one state dict (generator.*, discriminator.*) holds the checkpoint."""

    def __init__(self, cfg: Config):
        super().__init__()
        self.generator, self.discriminator = Generator(cfg), Discriminator(cfg)
        self.z_dim = cfg.z_dim


# ----------------------------------------------------------------------------- process


def discriminator_loss(d_real: torch.Tensor, d_fake: torch.Tensor, real_label: float) -> torch.Tensor:
    """Binary cross-entropy: real images towards `real_label` (0.9, remedy 3), fakes towards 0."""
    real = F.binary_cross_entropy_with_logits(d_real, torch.full_like(d_real, real_label))
    fake = F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake))
    return real + fake


def generator_loss(d_fake: torch.Tensor) -> torch.Tensor:
    """The non-saturating loss -log D(G(z)): strong gradients even while D easily rejects the fakes."""
    return F.binary_cross_entropy_with_logits(d_fake, torch.ones_like(d_fake))


# ----------------------------------------------------------------------------- loop


def train(cfg: Config, device: str = "cpu",
          progress: Callable[[int, int, dict], None] | None = None) -> tuple[GAN, dict[str, list[float]]]:
    """Alternate one D step and one G step, for cfg.steps or cfg.max_seconds;
    returns (model, {"discriminator": [...], "generator": [...]}), one loss per step each."""
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    x_train = to_signed(load_digits(cfg.mnist_dir).train).to(device)  # (N, 1, 8, 8) in [-1, 1]
    model = GAN(cfg).to(device)
    G, D = model.generator, model.discriminator
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr, betas=cfg.betas)
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr, betas=cfg.betas)
    losses = {"discriminator": [], "generator": []}
    budget = output.Budget(cfg.steps, cfg.max_seconds, progress)
    for _ in budget:  # stops after cfg.steps steps or cfg.max_seconds seconds, whichever comes first
        real = random_batch(x_train, cfg.batch_size, gen)  # (B, 1, 8, 8)
        z = torch.randn((cfg.batch_size, cfg.z_dim), generator=gen).to(device)  # (B, z_dim)
        fake = G(z)  # (B, 1, 8, 8)

        # D step: fakes are detached, so this step does not touch G.
        loss_d = discriminator_loss(D(real), D(fake.detach()), cfg.real_label)
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()

        # G step: through the freshly updated D.
        loss_g = generator_loss(D(fake))
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()

        losses["discriminator"].append(loss_d.item())
        losses["generator"].append(loss_g.item())
        budget.report({"loss": losses["generator"][-1], "loss_d": losses["discriminator"][-1]})
    return model.eval(), losses


@torch.no_grad()
def sample(model: GAN, n: int, seed: int = 0) -> torch.Tensor:
    """n generated digits, (n, 1, 8, 8) in [0, 1] (BatchNorm in eval mode uses its running statistics)."""
    gen = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    z = torch.randn((n, model.z_dim), generator=gen).to(device)  # (n, z_dim)
    return to_unit(model.generator(z))


@torch.no_grad()
def evaluate(model: GAN, cfg: Config, cache_dir: Path | None = None) -> dict:  # same as vae.py, without an NLL
    start = time.perf_counter()
    samples = sample(model, cfg.n_samples, seed=cfg.seed)
    speed = cfg.n_samples / (time.perf_counter() - start)
    return {**metrics.score_samples(samples, load_digits(cfg.mnist_dir), cache_dir), "samples_per_s": round(speed, 1)}


def load_checkpoint(out_dir: str | Path, device: str = "cpu") -> tuple[GAN, Config]:
    """Rebuild the model of a finished run from its model.safetensors and config.json.

    Same as vae.py, except that JSON turned the `betas` tuple into a list.
    """
    state, description = output.read_run(Path(out_dir), NAME)
    raw = description["config"]
    cfg = Config(**{**raw, "betas": tuple(raw["betas"])})
    model = GAN(cfg)
    model.load_state_dict(state)
    return model.to(device).eval(), cfg


# same as vae.py, with two losses
def run(cfg: Config, out_dir: Path, preset: str, device: str = "cpu",
        progress: Callable[[int, int, dict], None] | None = None,
        cache_dir: Path | None = None) -> tuple[dict, dict[str, Path]]:
    """Train, evaluate, and write samples.png, curve.png, metrics.json, model.safetensors and config.json."""
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    model, losses = train(cfg, device, progress)
    steps_done = len(losses["generator"])
    result = {**output.budget_summary(cfg, steps_done, time.perf_counter() - start),
              "final_loss": round(float(np.mean(losses["generator"][-50:])), 4),
              "final_loss_d": round(float(np.mean(losses["discriminator"][-50:])), 4),
              **evaluate(model, cfg, cache_dir)}
    output.save_grid(sample(model, 64, seed=cfg.seed), out_dir / "samples.png")
    output.save_curve(losses, out_dir / "curve.png", "GAN training (BCE)")
    files = output.save_run(out_dir, NAME, preset, cfg, steps_done, model.state_dict(), result)
    return result, files

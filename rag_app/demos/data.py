"""The digits every image demo trains on: 8x8 grey-level images with 17 levels, split once, offline.

The default is scikit-learn's bundled digits (1,797 images of 8x8 pixels, values 0..16), which ship inside
the package, so nothing is downloaded. MNIST is optional: point `mnist_dir` (in a demo config; `run_demo` fills
it in from the setting `demos.mnist_dir`, environment variable `RAG_DEMOS__MNIST_DIR`) at a folder holding the
four standard idx files (gzipped or not) and the digits are cropped to the central 24x24 pixels, average-pooled
3x3 down to 8x8 and quantised to the same 17 levels, so every network, metric and bits-per-dimension figure stays
comparable.

The split into training and held-out images uses a fixed seed (0), independent of a run's seed, so metrics
from different runs are measured against the same held-out digits.
"""

from __future__ import annotations

import functools
import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

LEVELS = 17  # grey levels 0..16 per pixel (sklearn digits natively; MNIST is quantised to match)
SIDE = 8  # images are SIDE x SIDE pixels
SPLIT_SEED = 0  # the train / held-out split never changes between runs
HELDOUT_FRACTION = 0.2  # share of the sklearn digits kept out of training (360 of 1,797)
MNIST_HELDOUT = 2000  # MNIST: this many test-set images form the held-out split


@dataclass(frozen=True)
class Digits:
    """Images as floats in [0, 1] that are multiples of 1/16, with their labels (labels only feed metrics.py)."""

    train: torch.Tensor  # (N, 1, 8, 8) float32 in [0, 1]
    train_labels: torch.Tensor  # (N,) int64 in 0..9
    heldout: torch.Tensor  # (M, 1, 8, 8) float32 in [0, 1]
    heldout_labels: torch.Tensor  # (M,) int64 in 0..9
    source: str  # "sklearn-digits" or "mnist"


def load_digits(mnist_dir: str | Path | None = None) -> Digits:
    """Load the seeded split of sklearn digits, or of MNIST when a folder is given.

    This module reads no settings or environment variables: the caller passes the folder (see `run_demo`).

    Raises:
        RagError: the MNIST folder lacks the idx files.
    """
    return _load_cached(str(mnist_dir) if mnist_dir else None)


@functools.lru_cache(maxsize=2)
def _load_cached(mnist_dir: str | None) -> Digits:
    if mnist_dir:
        return _load_mnist(Path(mnist_dir))
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    images = bunch.images.astype(np.float32) / (LEVELS - 1)  # (1797, 8, 8) in [0, 1]
    labels = bunch.target.astype(np.int64)
    order = np.random.default_rng(SPLIT_SEED).permutation(len(images))
    n_heldout = int(round(HELDOUT_FRACTION * len(images)))
    held, train = order[:n_heldout], order[n_heldout:]
    as_tensor = lambda a: torch.from_numpy(np.ascontiguousarray(a))  # noqa: E731
    return Digits(
        train=as_tensor(images[train])[:, None],  # (N, 1, 8, 8)
        train_labels=as_tensor(labels[train]),
        heldout=as_tensor(images[held])[:, None],  # (M, 1, 8, 8)
        heldout_labels=as_tensor(labels[held]),
        source="sklearn-digits",
    )


def _read_idx(path: Path) -> np.ndarray:
    """Read one idx file (the MNIST format): a magic number, the dimensions, then raw uint8 data."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        raw = handle.read()
    n_dims = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(n_dims)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * n_dims).reshape(dims)


def _find_idx(folder: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        if (folder / name).is_file():
            return folder / name
    from rag_app.errors import RagError

    raise RagError(
        f"MNIST folder {folder} has no {stem}[.gz]: put the four idx files there, "
        "or unset RAG_DEMOS__MNIST_DIR (the setting demos.mnist_dir) to use the bundled sklearn digits"
    )


def downsample_mnist(images: np.ndarray) -> np.ndarray:
    """(N, 28, 28) uint8 -> (N, 8, 8) float32 in [0, 1], on the 17-level grid of the sklearn digits."""
    crop = images[:, 2:26, 2:26].astype(np.float32) / 255.0  # (N, 24, 24): MNIST digits sit in the centre
    pooled = crop.reshape(-1, SIDE, 3, SIDE, 3).mean(axis=(2, 4))  # (N, 8, 8)
    pooled = pooled / max(float(pooled.max()), 1e-6)  # pooling dims the strokes; stretch back to full range
    return np.round(pooled * (LEVELS - 1)) / (LEVELS - 1)


def _load_mnist(folder: Path) -> Digits:
    train_x = downsample_mnist(_read_idx(_find_idx(folder, "train-images-idx3-ubyte")))
    train_y = _read_idx(_find_idx(folder, "train-labels-idx1-ubyte")).astype(np.int64)
    test_x = downsample_mnist(_read_idx(_find_idx(folder, "t10k-images-idx3-ubyte")))
    test_y = _read_idx(_find_idx(folder, "t10k-labels-idx1-ubyte")).astype(np.int64)
    pick = np.random.default_rng(SPLIT_SEED).permutation(len(test_x))[:MNIST_HELDOUT]
    return Digits(
        train=torch.from_numpy(train_x)[:, None].contiguous(),  # (60000, 1, 8, 8)
        train_labels=torch.from_numpy(train_y.copy()),
        heldout=torch.from_numpy(test_x[pick])[:, None].contiguous(),  # (2000, 1, 8, 8)
        heldout_labels=torch.from_numpy(test_y[pick].copy()),
        source="mnist",
    )


def to_signed(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] -> [-1, 1], the range tanh generators and diffusion models work in."""
    return x * 2 - 1


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1], clamped, for grids and metrics."""
    return ((x + 1) / 2).clamp(0, 1)


def to_levels(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] floats -> integer grey levels 0..16 (int64), the targets of likelihood models."""
    return torch.round(x * (LEVELS - 1)).long()


def random_batch(x: torch.Tensor, batch_size: int, generator: torch.Generator) -> torch.Tensor:
    """A batch drawn with replacement by a seeded generator (a CPU generator, so runs repeat on any device)."""
    index = torch.randint(0, len(x), (batch_size,), generator=generator)
    return x[index.to(x.device)]

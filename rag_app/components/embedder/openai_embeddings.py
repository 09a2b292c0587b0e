"""The OpenAI-compatible embedder: any `POST {base}/embeddings` server (`RAG_EMBEDDER__MODE=openai`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rag_app.components.embedder.base import Embedder
from rag_app.errors import RagError
from rag_app.settings import PACKAGED_EMBEDDER, EmbedderSettings
from rag_app.text import estimate_tokens


class OpenAIEmbedder(Embedder):
    """An OpenAI-compatible `POST {base}/embeddings` server: TEI, Infinity, vLLM, Ollama, llama.cpp server, `rag serve`.

    Texts go in batches of `batch_size` (the inherited `embed`); the vectors come back in the server's `index`
    order and are L2-normalised here. The name is `openai:<model>` and the fingerprint adds the dimension, so a
    collection built through a server refuses another model (or a local embedder), wherever the server runs: the
    base URL is not part of it, so moving the server keeps the collection. There is no tokenizer on this side:
    `count_tokens` is the model-free estimate of `rag_app.text.estimate_tokens`, and `max_tokens` is the
    usual 512-token window of sentence-embedding models (chunks stay at `chunk.chunk_tokens`, 200 by default).
    Errors (server down, timeout, unknown model) are `RagError`s naming the URL (`openai_http`).

    Args:
        base_url: e.g. `http://127.0.0.1:8080/v1`.
        model: the server's name for the embedding model.
        api_key: sent as a bearer token when set.
        timeout_s: limit for connecting and for each answer.
        batch_size: texts per request.
        dim: the vector size, if known (default: measured by the first request).
    """

    special_tokens = 0  # the estimate does not know the model's special tokens
    max_tokens = 512

    def __init__(self, base_url: str, model: str, *, api_key: str | None = None, timeout_s: float = 60.0,
                 batch_size: int = 64, dim: int | None = None):
        from rag_app.components.openai_http import OpenAIServer

        self.server = OpenAIServer(base_url, model, api_key=api_key, timeout_s=timeout_s, section="embedder",
                                   what="embedding server")
        self.model = model
        self.name = f"openai:{model}"
        self.batch_size = batch_size
        self._dim = dim

    @classmethod
    def from_settings(cls, cfg: EmbedderSettings, *, device: str, cache_dir: str, offline: bool) -> Embedder:
        if not cfg.base_url:
            raise RagError("embedder.mode is 'openai' but no server is configured: set RAG_EMBEDDER__BASE_URL (e.g. "
                           "http://127.0.0.1:8080/v1) and RAG_EMBEDDER__MODEL")
        if cfg.model == PACKAGED_EMBEDDER:
            raise RagError("embedder.mode is 'openai': set RAG_EMBEDDER__MODEL to the model name the server serves")
        return cls(cfg.base_url, cfg.model, api_key=cfg.api_key, timeout_s=cfg.timeout_s, batch_size=cfg.batch_size)

    @property
    def dim(self) -> int:  # type: ignore[override]
        if self._dim is None:
            self._dim = int(self._embed_batch(["dimension probe"]).shape[1])
        return self._dim

    counts_while_embedding = True  # the count is a model-free estimate

    def count_tokens(self, text: str) -> int:
        return estimate_tokens(text)

    def _embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        answer = self.server.post_json("/embeddings", {"model": self.model, "input": list(texts),
                                                       "encoding_format": "float"})
        try:
            rows = sorted(answer["data"], key=lambda row: row.get("index", 0))
            matrix = np.asarray([row["embedding"] for row in rows], dtype=np.float32)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise RagError(f"the embedding server at {self.server.base_url} answered /embeddings without the OpenAI "
                           f"shape ({{'data': [{{'index', 'embedding'}}]}}): {str(answer)[:200]}") from exc
        if matrix.ndim != 2 or matrix.shape[0] != len(texts):
            raise RagError(f"the embedding server at {self.server.base_url} returned {matrix.shape[0] if matrix.ndim else 0} "
                           f"vectors for {len(texts)} texts")
        if self._dim is not None and matrix.shape[1] != self._dim:
            raise RagError(f"the embedding server at {self.server.base_url} returned {matrix.shape[1]}-dimensional "
                           f"vectors, not {self._dim}: did its model change? Set RAG_EMBEDDER__MODEL to the one "
                           "the collection was built with")
        self._dim = int(matrix.shape[1])
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        zero = norms[:, 0] == 0
        matrix = matrix / np.where(norms == 0, 1.0, norms)
        matrix[zero, 0] = 1.0  # an all-zero vector still becomes a valid unit vector
        return matrix

    def describe(self) -> dict:
        """What runs, for `rag doctor` and the benchmarks."""
        return {"name": self.name, "backend": "openai", "base_url": self.server.base_url, "dim": self._dim,
                "max_tokens": self.max_tokens}


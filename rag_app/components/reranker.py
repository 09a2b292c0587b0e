"""Optional cross-encoder reranking of retrieved chunks.

A cross-encoder reads the query and a chunk together and scores their relevance: slower than the embedder, often
more precise. None ships with the app, so the stage is off unless `retrieve.rerank_model` names a local
sentence-transformers CrossEncoder folder (e.g. one saved from `cross-encoder/ms-marco-MiniLM-L-6-v2`).

Any object with `rerank(query, hits) -> hits` (the same hits, best first, each with `extra["rerank_score"]`) plugs
into `Retriever(reranker=...)`.
"""

from __future__ import annotations

import functools
from pathlib import Path

from rag_app.components.store import Hit
from rag_app.errors import RagError
from rag_app.settings import Settings


class CrossEncoderReranker:
    """sentence-transformers CrossEncoder over "title\\nsection\\ntext" of each hit; loads on first use."""

    def __init__(self, path: str, device: str = "cpu", batch_size: int = 32):
        self.path = path
        self.device = device
        self.batch_size = batch_size
        self._model = None

    def _load(self):
        if self._model is None:
            from sentence_transformers import CrossEncoder

            try:
                self._model = CrossEncoder(self.path, device=self.device, trust_remote_code=False,
                                           model_kwargs={"use_safetensors": True})  # never unpickle weights
            except Exception as exc:  # noqa: BLE001 - loader failures become one message with a fix
                raise RagError(f"could not load the cross-encoder at {self.path!r} ({type(exc).__name__}: {exc}); "
                               "fix or unset RAG_RETRIEVE__RERANK_MODEL") from exc
        return self._model

    def rerank(self, query: str, hits: list[Hit]) -> list[Hit]:
        if not hits:
            return hits
        pairs = [(query, _passage(hit)) for hit in hits]
        scores = self._load().predict(pairs, batch_size=self.batch_size, show_progress_bar=False)
        for hit, score in zip(hits, scores):
            hit.extra["rerank_score"] = float(score)
            hit.score = float(score)
        return sorted(hits, key=lambda h: h.extra["rerank_score"], reverse=True)


def _passage(hit: Hit) -> str:
    title = str(hit.metadata.get("title") or "")
    section = str(hit.metadata.get("section") or "")
    head = "\n".join(part for part in (title, section if section != title else "") if part)
    return f"{head}\n{hit.text}" if head else hit.text


@functools.lru_cache(maxsize=2)
def _cached(path: str, device: str) -> CrossEncoderReranker:
    return CrossEncoderReranker(path, device=device)


def get_reranker(settings: Settings) -> CrossEncoderReranker | None:
    """The configured cross-encoder (one per process), or None when reranking is off.

    Raises:
        RagError: the configured path does not exist (we never download a model).
    """
    path = settings.retrieve.rerank_model
    if not path:
        return None
    if not Path(path).expanduser().is_dir():
        raise RagError(f"retrieve.rerank_model {path!r} is not a folder: point RAG_RETRIEVE__RERANK_MODEL at a local "
                       "sentence-transformers CrossEncoder (saved with `model.save(DIR)`), or unset it to turn "
                       "reranking off")
    from rag_app.components.device import resolve_device

    return _cached(str(Path(path).expanduser()), resolve_device(settings.device))

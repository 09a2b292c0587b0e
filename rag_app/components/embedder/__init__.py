"""Embedders behind one small interface (`base.Embedder`), with the backend chosen by `settings.embedder.mode`.

- `sentence-transformers` (`sentence_transformer.py`): a local model on the fastest measured inference backend
  (`backends.py`; the ONNX/OpenVINO conversions and their checks in `export.py`);
- `openai` (`openai_embeddings.py`): an OpenAI-compatible embeddings server;
- `fake` (`fake.py`): a hashing embedder for tests.

`get_embedder` builds one per process and configuration; under `embedder.backend = "auto"` it follows the collection
the vectors are for (`backends.backend_for_collection`): int8 for new collections where the CPU is fast at it, the
recorded quantisation (or none) for existing ones.
"""

from __future__ import annotations

import functools

from rag_app.components.embedder.backends import (
    BACKENDS,
    QUANTISED_BACKENDS,
    backend_available,
    backend_for_collection,
    backend_hint,
    resolve_backend,
)
from rag_app.components.embedder.base import Embedder
from rag_app.components.embedder.fake import FakeEmbedder
from rag_app.components.embedder.openai_embeddings import OpenAIEmbedder
from rag_app.components.embedder.sentence_transformer import SentenceTransformerEmbedder
from rag_app.components.packaged_models import packaged_embedder_path
from rag_app.settings import EmbedderSettings, Settings

__all__ = ["BACKENDS", "EMBEDDER_BACKENDS", "QUANTISED_BACKENDS", "Embedder", "FakeEmbedder", "OpenAIEmbedder",
           "SentenceTransformerEmbedder", "backend_available", "backend_for_collection", "backend_hint",
           "follows_collection", "get_embedder", "packaged_embedder_path", "resolve_backend"]

#: settings.embedder.mode → the class that implements it. A new backend is one `Embedder` subclass with a
#: `from_settings` classmethod, and one entry here (and in `EmbedderSettings.mode`).
EMBEDDER_BACKENDS: dict[str, type[Embedder]] = {
    "sentence-transformers": SentenceTransformerEmbedder,
    "fake": FakeEmbedder,
    "openai": OpenAIEmbedder,
}


@functools.lru_cache(maxsize=4)
def _cached_embedder(cfg: EmbedderSettings, device: str, cache_dir: str, offline: bool) -> Embedder:
    """Keyed on the frozen embedder section and the app-wide settings an embedder reads."""
    return EMBEDDER_BACKENDS[cfg.mode].from_settings(cfg, device=device, cache_dir=cache_dir, offline=offline)


def follows_collection(settings: Settings) -> bool:
    """Whether the embedder `get_embedder` builds depends on the collection's recorded fingerprint (a local model
    under `backend = "auto"`); when False, reading it can be skipped."""
    return settings.embedder.mode == "sentence-transformers" and settings.embedder.backend == "auto"


def get_embedder(settings: Settings, recorded: str | None = None) -> Embedder:
    """One embedder per process and configuration (models load once), for one collection.

    Args:
        settings: the app settings.
        recorded: the embedder fingerprint the collection recorded ('' for an existing collection that recorded
            none); None for a new collection. Matters only under `follows_collection(settings)`.
    """
    from rag_app.settings import apply_offline_env

    apply_offline_env(settings)
    cfg = settings.embedder
    if follows_collection(settings):
        backend = backend_for_collection(cfg.backend, recorded, settings.device)
        if backend != cfg.backend:
            cfg = cfg.model_copy(update={"backend": backend})
    return _cached_embedder(cfg, settings.device, str(settings.model_cache_dir), settings.offline)

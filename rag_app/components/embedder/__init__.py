"""Embedders behind one small interface (`base.Embedder`), with the backend chosen by `settings.embedder.mode`.

- `sentence-transformers` (`sentence_transformer.py`): a local model on the fastest measured inference backend
  (`backends.py`; the ONNX/OpenVINO conversions and their checks in `export.py`);
- `openai` (`openai_embeddings.py`): an OpenAI-compatible embeddings server;
- `fake` (`fake.py`): a hashing embedder for tests.

`get_embedder` builds one per process and configuration.
"""

from __future__ import annotations

import functools

from rag_app.components.embedder.backends import (
    BACKENDS,
    QUANTISED_BACKENDS,
    backend_available,
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
           "SentenceTransformerEmbedder", "backend_available", "backend_hint", "get_embedder", "packaged_embedder_path",
           "resolve_backend"]

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


def get_embedder(settings: Settings) -> Embedder:
    """One embedder per process and configuration (models load once)."""
    from rag_app.settings import apply_offline_env

    apply_offline_env(settings)
    return _cached_embedder(settings.embedder, settings.device, str(settings.cache_dir), settings.offline)

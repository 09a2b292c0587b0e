"""Language models behind one small interface, with the backend chosen by `settings.llm.mode`.

- `transformers` (`transformers_lm.py`): a local causal LM, decoded in our own KV-cached loop.
- `openai` (`openai_chat.py`): any OpenAI-compatible server (vLLM, Ollama, llama.cpp server, `transformers serve`).
- `scripted` (`scripted.py`): a deterministic fake for tests.

The interface is `base.LLM`; `streaming.StopStreamer` cuts streamed text at stop strings. A new backend is one
module with an `LLM` subclass (and its `from_settings`) and one entry in `LLM_BACKENDS` below.
"""

from __future__ import annotations

import functools
from pathlib import Path

from rag_app.components.llm.base import LLM, ChooseNext, Continuations, Message, render_plain
from rag_app.components.llm.openai_chat import OpenAILLM
from rag_app.components.llm.scripted import ScriptedLLM
from rag_app.components.llm.transformers_lm import LENGTH_BUCKET, TransformersLLM, forward_cached, padded_length
from rag_app.errors import RagError
from rag_app.settings import LLMSettings, Settings

__all__ = ["LENGTH_BUCKET", "LLM", "LLM_BACKENDS", "ChooseNext", "Continuations", "Message", "OpenAILLM",
           "ScriptedLLM", "TransformersLLM", "forward_cached", "get_llm", "padded_length", "render_plain"]

#: `settings.llm.mode` -> backend class: a new backend is one class (with `from_settings`) and one entry here.
LLM_BACKENDS: dict[str, type[LLM]] = {"transformers": TransformersLLM, "openai": OpenAILLM, "scripted": ScriptedLLM}


@functools.lru_cache(maxsize=4)
def _cached_llm(llm: LLMSettings, device: str, cache_dir: str, offline: bool) -> LLM:
    backend = LLM_BACKENDS.get(llm.mode)
    if backend is None:
        raise RagError(f"unknown llm.mode {llm.mode!r}: use one of {', '.join(sorted(LLM_BACKENDS))}")
    return backend.from_settings(llm, device=device, cache_dir=Path(cache_dir), offline=offline)


def get_llm(settings: Settings) -> LLM:
    """One LM per process and configuration (models load once, on first use)."""
    from rag_app.settings import apply_offline_env

    apply_offline_env(settings)
    return _cached_llm(settings.llm, settings.device, str(settings.cache_dir), settings.offline)

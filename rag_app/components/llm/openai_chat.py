"""The OpenAI-compatible LM: any `/v1/chat/completions` server over plain HTTP with SSE streaming."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from rag_app.components.llm.base import LLM
from rag_app.components.llm.streaming import StopStreamer
from rag_app.errors import RagError
from rag_app.settings import PACKAGED_LLM, LLMSettings


class OpenAILLM(LLM):
    """An OpenAI-compatible `/v1/chat/completions` server (vLLM, Ollama, llama.cpp server, `transformers serve`),
    streamed with server-sent events (stdlib only; errors as in `rag_app.components.openai_http`).

    It shows no logits, so extractive answers are generated under the span prompt and snapped onto the evidence
    (`rag_app.services.extractive.stream_span`). A reply `prefix` is not sent as a partial assistant turn: servers
    disagree on continuing one (transformers serve closes it and starts a new turn), so the model answers after the
    few-shot turns on its own, and an echo of the prefix at the start of its reply is dropped.
    """

    def __init__(self, base_url: str, model: str, api_key: str | None = None, timeout_s: float = 120.0,
                 context_tokens: int = 4096):
        from rag_app.components.openai_http import OpenAIServer

        self.server = OpenAIServer(base_url, model, api_key=api_key, timeout_s=timeout_s, section="llm",
                                   what="LM server")
        self.base_url = self.server.base_url
        self.model = model
        self.name = f"openai:{model}"
        self.context_window = context_tokens

    @classmethod
    def from_settings(cls, llm: LLMSettings, *, device: str, cache_dir: Path, offline: bool) -> OpenAILLM:
        if not llm.base_url:
            raise RagError("llm.mode is 'openai' but no server is configured: set RAG_LLM__BASE_URL (e.g. "
                           "http://127.0.0.1:8000/v1) and RAG_LLM__MODEL")
        if llm.model == PACKAGED_LLM:
            raise RagError("llm.mode is 'openai': set RAG_LLM__MODEL to the model name the server serves")
        return cls(llm.base_url, llm.model, llm.api_key, llm.timeout_s, llm.context_tokens)

    def count_tokens(self, text: str) -> int:
        # No tokenizer here: ~4 characters per token, rounded up, is a conservative estimate for English.
        return (len(text) + 3) // 4

    def stream(self, messages, max_new_tokens=96, temperature=0.0, stop=(), prefix=""):
        body = {"model": self.model, "messages": list(messages), "max_tokens": max_new_tokens,
                "temperature": temperature, "stream": True}
        if stop:
            body["stop"] = list(stop)[:4]
        texts = _sse_texts(self.server.sse("/chat/completions", body))
        if prefix:
            texts = _without_prefix(texts, prefix)
        yield from StopStreamer(stop).pieces(texts)


def _sse_texts(events: Iterable[dict]) -> Iterator[str]:
    """The growing reply text of OpenAI-style stream events (chat `delta.content`, or completion `text`)."""
    full = ""
    for event in events:
        try:
            choice = event["choices"][0]
        except (KeyError, IndexError, TypeError):
            continue
        piece = (choice.get("delta") or {}).get("content") or choice.get("text") or ""
        if piece:
            full += piece
            yield full


def _without_prefix(fulls: Iterable[str], prefix: str) -> Iterator[str]:
    """A growing text without a leading echo of `prefix` ("Answer: 1889" -> "1889"), matched case-insensitively."""
    want = prefix.strip().lower()
    offset: int | None = None  # where the reply proper starts, once known
    for full in fulls:
        if offset is None:
            head = full.lstrip()
            if len(head) <= len(want) and want.startswith(head.lower()):
                continue  # could still be the prefix: wait for more
            rest = head[len(want):].lstrip() if head.lower().startswith(want) else full
            offset = len(full) - len(rest)
        if full[offset:]:
            yield full[offset:]


"""The scripted LM: a deterministic fake for tests (`RAG_LLM__MODE=scripted`)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from rag_app.components.llm.base import LLM, Message
from rag_app.components.llm.streaming import StopStreamer
from rag_app.settings import LLMSettings
from rag_app.text import split_sentences, word_tokens

_SOURCE = re.compile(r"<source id=(\d+)[^>]*>\s*(.*?)\s*</source>", re.S)


class ScriptedLLM(LLM):
    """A deterministic fake LM for tests.

    With `replies`, it streams them in order (word by word), one per call, then repeats the last one. Without, it
    answers like a faithful reader: the first sentence of the first `<source id=N>` in the last user message,
    followed by `[N]`. `calls` records the last `max_calls` prompts (oldest first), for assertions on the context
    budget; it is bounded so that a long-running process using this backend does not grow without limit.
    """

    def __init__(self, replies: Sequence[str] | None = None, context_tokens: int = 2048, max_calls: int = 1000):
        self.name = "scripted"
        self.replies = list(replies or [])
        self.context_window = context_tokens
        self.max_calls = max(1, max_calls)
        self.calls: list[list[Message]] = []

    @classmethod
    def from_settings(cls, llm: LLMSettings, *, device: str, cache_dir: Path, offline: bool) -> ScriptedLLM:
        return cls(context_tokens=llm.context_tokens)

    def count_tokens(self, text: str) -> int:
        return len(word_tokens(text))

    def _reply(self, messages: Sequence[Message]) -> str:
        if self.replies:
            return self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
        user = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
        found = _SOURCE.search(user)
        if not found:
            return "I don't know."
        sentence = (split_sentences(found.group(2)) or [found.group(2).strip()])[0].rstrip(".")
        return f"{sentence} [{found.group(1)}]."

    def stream(self, messages, max_new_tokens=96, temperature=0.0, stop=(), prefix=""):
        self.calls.append(list(messages))
        if len(self.calls) > self.max_calls:
            del self.calls[: len(self.calls) - self.max_calls]
        words = re.findall(r"\S+\s*", self._reply(messages))[:max_new_tokens]
        yield from StopStreamer(stop).pieces("".join(words[: n + 1]) for n in range(len(words)))


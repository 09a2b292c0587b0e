"""A LangChain chat model (Ollama, vLLM, llama.cpp, a hosted API, a fake) as our LM: `RAG(llm=<BaseChatModel>)`.

The adapter implements our `LLM` interface's two abstract methods over the model's own `stream`:

- `stream`: our `{"role", "content"}` messages go to the model as they are (LangChain reads that format), its
  message chunks come back as text pieces; `stop` strings are passed to the model and also enforced here. Sampling
  settings (temperature, token caps) are the chat model's own: configure them on it (`ChatOllama(temperature=0)`).
  A `prefix` cannot be prefilled into a chat turn; it is dropped from the reply when the model repeats it.
- `count_tokens`: LangChain's token counting may download a tokenizer, so, as for LangChain embeddings, an estimate
  (`rag_app.text.estimate_tokens`) unless `count_tokens=` is given.
- `name`: `langchain:<Class>[:<model>]` (shown as `Answer.model`); `context_window`: 8192 by default (the prompt is
  fitted to the smaller of this and `settings.llm.context_tokens`).

A chat model shows no logits (`exposes_logits = False`), so span-constrained extractive decoding cannot steer it.
`answer_strategy = "generative"` asks the answer service for the strategy that works with it: a free reply, then
the per-sentence support check and the quote fallback; `Answer.extra["strategy"]` says which ran, `Answer.model`
names the model (pass `strategy=None` to follow `settings.answer.strategy` instead). Nothing here imports LangChain:
a completion model (`BaseLLM`, whose chunks are strings) works too.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from rag_app.components.llm.base import LLM, Message
from rag_app.components.llm.streaming import StopStreamer
from rag_app.errors import RagError
from rag_app.text import estimate_tokens

_MODEL_ATTRS = ("model", "model_name", "model_id", "repo_id", "deployment_name")


class LangChainChatLLM(LLM):
    """Wraps a LangChain chat (or completion) model; see the module docstring.

    Args:
        model: the LangChain model (anything with `stream(messages, stop=...)`).
        name: shown as `Answer.model` (default: derived from the class and model name).
        context_window: the model's context window in tokens.
        count_tokens: a token counter for fitting the prompt (default: an estimate).
        strategy: the answer strategy this model asks for ("generative"), or None to follow the settings.
    """

    exposes_logits = False

    def __init__(self, model: Any, *, name: str | None = None, context_window: int = 8192,
                 count_tokens: Callable[[str], int] | None = None, strategy: str | None = "generative"):
        if not callable(getattr(model, "stream", None)):
            raise RagError(f"{type(model).__name__} is not a LangChain chat model (it has no stream method)")
        if strategy not in (None, "generative", "extractive"):
            raise RagError(f"unknown answer strategy {strategy!r}: use 'generative', 'extractive' or None")
        self.model = model
        self.name = name or default_name(model)
        self.context_window = context_window
        self._count = count_tokens or estimate_tokens
        self.answer_strategy = strategy

    def count_tokens(self, text: str) -> int:
        return self._count(text)

    def stream(self, messages: Sequence[Message], max_new_tokens: int = 96, temperature: float = 0.0,
               stop: Sequence[str] = (), prefix: str = "") -> Iterator[str]:
        kwargs = {"stop": list(stop)} if stop else {}
        chunks = (_text(chunk) for chunk in self.model.stream([dict(m) for m in messages], **kwargs))
        yield from StopStreamer(stop).pieces(_growing(_without_prefix(chunks, prefix)))


def default_name(model: Any) -> str:
    name = f"langchain:{type(model).__name__}"
    for attr in _MODEL_ATTRS:
        value = getattr(model, attr, None)
        if isinstance(value, str) and value:
            return f"{name}:{value}"
    return name


def _text(chunk: Any) -> str:
    """A streamed chunk's text: a message chunk's content (a string, or text blocks), or a completion string."""
    content = getattr(chunk, "content", chunk)
    if isinstance(content, str):
        return content
    return "".join(part if isinstance(part, str) else str(part.get("text", "")) for part in content or []
                   if isinstance(part, str) or (isinstance(part, dict) and part.get("type", "text") == "text"))


def _without_prefix(pieces: Iterator[str], prefix: str) -> Iterator[str]:
    """The pieces, less a leading `prefix` (and the whitespace around it) when the model repeats it."""
    if not prefix:
        yield from pieces
        return
    head = ""
    for piece in pieces:
        head += piece
        if not prefix.startswith(head.lstrip()):
            break
    else:
        return  # the reply was (part of) the prefix alone
    if not head.lstrip().startswith(prefix):
        yield head
        yield from pieces
        return
    rest = itertools.chain([head.lstrip()[len(prefix):]], pieces)
    for piece in rest:
        if piece.lstrip():
            yield piece.lstrip()
            break
    yield from rest


def _growing(pieces: Iterator[str]) -> Iterator[str]:
    """The whole text so far after each piece (what `StopStreamer.pieces` reads)."""
    full = ""
    for piece in pieces:
        full += piece
        yield full

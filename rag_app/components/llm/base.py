"""The LM interface: a chat LM with a name, a context window, a token counter and streamed generation.

A backend implements `stream` (and `generate` is inherited). A backend that shows its logits sets `exposes_logits`
and implements the token-level primitive: `decode(messages, choose_next)` plus `tokenize`, `token_strings` and
`stop_ids`, which is all a decoding constraint needs (see `rag_app.services.extractive`), and `continuations`, the
batched scoring of candidate replies. The backends are one module each beside this one; `rag_app.components.llm`
holds the registry that picks one by `settings.llm.mode`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING

from rag_app.settings import LLMSettings

if TYPE_CHECKING:
    import numpy as np

Message = dict[str, str]  # {"role": "system" | "user" | "assistant", "content": str}


#: Picks the next token from the model's next-token logits: `choose_next(logits, generated)` gets a float32 array of
#: shape (V,) and the ids chosen so far, and returns the next id, or None to stop.
ChooseNext = Callable[["np.ndarray", list[int]], "int | None"]


class LLM(ABC):
    """A chat LM: a name, a context window, a token counter and streamed generation.

    Backends that show their logits (`exposes_logits`) also offer token-level decoding: `decode` with a caller's
    `choose_next`, and the token accessors a constraint needs (`tokenize`, `token_strings`, `stop_ids`).
    """

    name: str
    context_window: int
    #: Whether `decode` and the token accessors work (the backend sees its next-token logits).
    exposes_logits: bool = False
    #: The trained reader adapter in use (`rag_app.components.reader_adapter.ReaderAdapter`), or None.
    reader = None

    @classmethod
    def from_settings(cls, llm: LLMSettings, *, device: str, cache_dir: Path, offline: bool) -> LLM:
        """Build the backend from `settings.llm` (and the app-wide device, cache folder and offline switch)."""
        raise NotImplementedError(f"{cls.__name__} cannot be built from settings")

    @abstractmethod
    def count_tokens(self, text: str) -> int:
        """Number of model tokens in `text`."""

    def count_prompt_tokens(self, messages: Sequence[Message], prefix: str = "") -> int:
        """Tokens of the whole rendered prompt (chat template included)."""
        return self.count_tokens(render_plain(messages) + prefix)

    @abstractmethod
    def stream(self, messages: Sequence[Message], max_new_tokens: int = 96, temperature: float = 0.0,
               stop: Sequence[str] = (), prefix: str = "") -> Iterator[str]:
        """Yield text pieces of the assistant reply as they are generated.

        Args:
            messages: the chat, system message first.
            max_new_tokens: generation cap.
            temperature: 0 means greedy.
            stop: strings that end generation (not included in the output).
            prefix: text that starts the assistant reply (e.g. "Answer:"); not yielded.
        """

    def generate(self, messages: Sequence[Message], max_new_tokens: int = 96, temperature: float = 0.0,
                 stop: Sequence[str] = (), prefix: str = "") -> str:
        return "".join(self.stream(messages, max_new_tokens, temperature, stop, prefix))

    # -- token-level decoding (backends with `exposes_logits`) -------------------------------------------------------
    def decode(self, messages: Sequence[Message], choose_next: ChooseNext, max_new_tokens: int = 96,
               prefix: str = "", stop: Sequence[str] = ()) -> Iterator[str]:
        """Yield text pieces of a reply whose every token is picked by `choose_next` (see `ChooseNext`).

        Args:
            messages: the chat, system message first.
            choose_next: picks each token from the logits, or stops (it also decides about end-of-turn tokens).
            max_new_tokens: generation cap.
            prefix: text that starts the assistant reply; not yielded.
            stop: strings that end the streamed text (not included).
        """
        raise NotImplementedError(f"{self.name} does not expose logits (exposes_logits is False)")

    def continuations(self, messages: Sequence[Message], prefix: str = "", reserve: int = 32
                      ) -> AbstractContextManager[Continuations]:
        """Score continuations of a prompt: `with llm.continuations(messages, prefix) as c:` runs the prompt once
        and holds the model (and its KV cache) while `c.first_logprobs` and `c.score(...)` are used.

        Args:
            messages: the chat, system message first.
            prefix: text that starts the assistant reply.
            reserve: tokens of the context window to leave for the continuations.
        """
        raise NotImplementedError(f"{self.name} does not expose logits (exposes_logits is False)")

    def tokenize(self, text: str) -> list[int]:
        """The token ids of `text`, without special tokens."""
        raise NotImplementedError(f"{self.name} does not expose its tokenizer")

    def token_strings(self, ids: Sequence[int]) -> list[str]:
        """The vocabulary strings of token ids (with the tokenizer's word-start marker, e.g. "Ġ" or "▁")."""
        raise NotImplementedError(f"{self.name} does not expose its tokenizer")

    def detokenize(self, ids: Sequence[int]) -> str:
        """The text of token ids (special tokens dropped)."""
        raise NotImplementedError(f"{self.name} does not expose its tokenizer")

    def stop_ids(self) -> set[int]:
        """The ids of the tokens that end a turn (end of sequence, end of turn)."""
        raise NotImplementedError(f"{self.name} does not expose its tokenizer")


class Continuations(ABC):
    """A prompt already run through the model; candidate continuations of it are scored in one batch."""

    #: log-probabilities of the first token after the prompt, shape (V,).
    first_logprobs: np.ndarray

    @abstractmethod
    def score(self, continuations: Sequence[Sequence[int]], end_ids: Iterable[int]
              ) -> list[tuple[np.ndarray, np.ndarray]]:
        """For each continuation c (n >= 1 token ids): (token_lp, end_lp), both shape (n,): token_lp[t] is
        log p(c[t] | prompt, c[:t]) and end_lp[t] is log p(any of `end_ids` | prompt, c[:t + 1]), the chance that
        the reply ends right after its first t + 1 tokens."""



def render_plain(messages: Sequence[Message]) -> str:
    """A template-free rendering, for models without a chat template and for token estimates."""
    parts = [f"{m['role'].capitalize()}: {m['content']}" for m in messages]
    return "\n\n".join(parts) + "\n\nAssistant:"

"""A LangChain `Embeddings` (HuggingFace, Ollama, OpenAI, a fake, ...) as our `Embedder`: `RAG(embedder=...)`.

Our interface needs more than LangChain's two methods, so the adapter supplies it:

- `name`: `langchain:<module>.<Class>`, plus `:<model>` when the object names its model (`model`, `model_name`,
  `model_id`, `repo_id`, `deployment`); pass `name=` to choose it. With `dim` it is the collection fingerprint
  (`name|dim=N`), so a collection built with one LangChain model refuses another.
- `dim`: measured by embedding one probe text on first use (one call to the model), unless given.
- `max_tokens`: 512 by default, the window of most sentence-embedding models (BGE, E5, GTE; API models take more).
  Chunk sizes still come from `chunk.chunk_tokens` (200); this is only the hard cap.
- `count_tokens`: LangChain exposes no tokenizer, so it is an estimate: the larger of the word-and-punctuation
  count and a quarter of the characters (English runs about 4 characters per BPE or WordPiece token). Pass
  `count_tokens=` (e.g. the model tokenizer's) for exact sizing.

Vectors are L2-normalised (our store and grounding assume unit vectors), queries go through the model's
`embed_query` (some models embed queries differently from documents). Nothing here imports LangChain: any object
with `embed_documents` and `embed_query` works.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from rag_app.components.embedder.base import Embedder
from rag_app.errors import RagError
from rag_app.text import estimate_tokens

__all__ = ["LangChainEmbedder", "default_name", "estimate_tokens"]

_MODEL_ATTRS = ("model", "model_name", "model_id", "repo_id", "deployment")
PROBE = "dimension probe"


class LangChainEmbedder(Embedder):
    """Wraps a LangChain `Embeddings`; see the module docstring for the values it supplies.

    Args:
        embeddings: the LangChain embeddings object.
        name: the stable identity recorded in collections (default: derived from the class and model).
        dim: the vector size, if known (default: measured once).
        max_tokens: the model's input window in tokens.
        count_tokens: a token counter for chunk sizing (default: `estimate_tokens`).
        batch_size: texts per `embed_documents` call.
    """

    special_tokens = 0  # the estimate does not know the model's special tokens; the window is taken as content

    def __init__(self, embeddings: Any, *, name: str | None = None, dim: int | None = None, max_tokens: int = 512,
                 count_tokens: Callable[[str], int] | None = None, batch_size: int = 64):
        if not (callable(getattr(embeddings, "embed_documents", None)) and callable(getattr(embeddings, "embed_query", None))):
            raise RagError(f"{type(embeddings).__name__} is not a LangChain Embeddings (it needs embed_documents "
                           "and embed_query)")
        self.embeddings = embeddings
        self.name = name or default_name(embeddings)
        self._dim = dim
        self.max_tokens = max_tokens
        self._count = count_tokens or estimate_tokens
        self.batch_size = batch_size

    @classmethod
    def wrap(cls, embeddings: Any) -> Embedder:
        """Our embedder for `embeddings`: unwrapped when it is one of ours seen through `RAG.as_embeddings()`."""
        inner = getattr(embeddings, "embedder", None)
        return inner if isinstance(inner, Embedder) else cls(embeddings)

    @property
    def dim(self) -> int:  # type: ignore[override]
        if self._dim is None:
            self._dim = len(self.embeddings.embed_query(PROBE))
        return self._dim

    @property
    def counts_while_embedding(self) -> bool:  # type: ignore[override]
        """The estimate may run beside `embed_documents`; a counter of the user's may share the model's tokenizer."""
        return self._count is estimate_tokens

    def count_tokens(self, text: str) -> int:
        return self._count(text)

    def _embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        return _unit_rows(self.embeddings.embed_documents(list(texts)), len(texts))

    def embed_query(self, text: str) -> np.ndarray:
        return _unit_rows([self.embeddings.embed_query(text)], 1)[0]


def default_name(embeddings: Any) -> str:
    cls = type(embeddings)
    name = f"langchain:{cls.__module__}.{cls.__qualname__}"
    for attr in _MODEL_ATTRS:
        value = getattr(embeddings, attr, None)
        if isinstance(value, str) and value:
            return f"{name}:{value}"
    return name


def _unit_rows(vectors, expected: int) -> np.ndarray:
    matrix = np.asarray(vectors, dtype=np.float32)
    if matrix.ndim != 2 or matrix.shape[0] != expected:
        raise RagError(f"the LangChain embeddings returned {matrix.shape[0] if matrix.ndim else 0} vectors for "
                       f"{expected} texts")
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    zero = norms[:, 0] == 0
    matrix = matrix / np.where(norms == 0, 1.0, norms)
    matrix[zero, 0] = 1.0  # an all-zero vector still becomes a valid unit vector
    return matrix

"""Our parts as LangChain objects: a retriever, a runnable answerer and embeddings (`RAG.as_retriever()` etc.).

Each adapter subclasses the LangChain base class, holds a reference to one of our services, and implements only
what that class leaves abstract (plus streaming for the runnable); batching, async, callbacks and `|` composition
are LangChain's own. Imported only when one of them is asked for, so `import rag_app` never loads LangChain.

    rag = RAG()
    docs = rag.as_retriever(k=4).invoke("What is a VAE?")          # list[Document]
    answer = rag.as_runnable().invoke("What is a VAE?")            # our Answer, grounded and cited
    vectors = rag.as_embeddings().embed_documents(["a", "b"])      # list[list[float]]
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any, Literal

from rag_app.errors import RagError

try:
    from langchain_core.callbacks import CallbackManagerForRetrieverRun
    from langchain_core.documents import Document
    from langchain_core.embeddings import Embeddings
    from langchain_core.messages import BaseMessage, convert_to_messages
    from langchain_core.retrievers import BaseRetriever
    from langchain_core.runnables import Runnable, RunnableConfig
    from langchain_core.runnables.config import run_in_executor
except ImportError as exc:  # pragma: no cover - langchain-core is a dependency; a broken install lands here
    raise RagError("the LangChain adapters need langchain-core: run `pip install langchain-core`") from exc

#: Chunk metadata that is ingest bookkeeping, not something a chain wants to see.
_BOOKKEEPING = frozenset({"file_hash", "chunking", "content_hash", "n_chunks", "chunk_index", "n_tokens",
                          "ingested_at", "start_char", "end_char", "start_line", "end_line", "origin"})
_ROLES = {"human": "user", "ai": "assistant"}
_DONE = object()

Output = Literal["answer", "dict"]


def hit_to_document(hit) -> Document:
    """A retrieved chunk as a LangChain `Document`: its text, and metadata with `source`, `title`, `section`,
    `page`, `lines` ("start-end"), `score` and `chunk_id` (also the Document's `id`), plus the chunk's other
    descriptive metadata (`path`, `doc_id`, `kind`, and a LangChain document's own keys)."""
    from rag_app.services.answer import Source

    source = Source.from_hit(0, hit)
    metadata = {key: value for key, value in (hit.metadata or {}).items() if key not in _BOOKKEEPING}
    metadata.update(source=source.source, title=source.title, section=source.section, page=source.page,
                    lines=source.lines, score=source.score, chunk_id=hit.id)
    return Document(page_content=hit.text, metadata=metadata, id=hit.id)


class RagRetriever(BaseRetriever):
    """Our retrieval service (hybrid search, fusion, optional reranking and MMR) as a LangChain retriever.

    `invoke(query)` returns up to `k` `Document`s, best first (see `hit_to_document`); `ainvoke` runs the same
    search in LangChain's executor.
    """

    retriever: Any  # rag_app.services.retrieve.Retriever
    k: int | None = None  # default: settings.retrieve.k
    source_glob: str | None = None  # only chunks whose source matches, e.g. "papers/*.pdf"

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        return [hit_to_document(hit) for hit in self.retriever.retrieve(query, k=self.k, source_glob=self.source_glob)]


class RagRunnable(Runnable[Any, Any]):
    """Our answer service (follow-up rewriting, retrieval, grounding, refusal, citations) as a LangChain runnable.

    Input: a question (str or message), `{"question": ..., "history": [...]}` (`"input"` and `"chat_history"` are
    accepted too; history as messages or `{"role", "content"}` dicts), or a list of messages whose last one is the
    question. Output: our `Answer`, or `Answer.to_dict()` with `output="dict"` (what `RunnableWithMessageHistory`
    needs, with `output_messages_key="answer"`). `stream`/`astream` yield the answer's text pieces as they are
    generated, then the final output; the final output is authoritative (its text may replace what was streamed,
    e.g. by a quote when a generated reply was unsupported).
    """

    def __init__(self, service, *, k: int | None = None, output: Output = "answer"):
        if output not in ("answer", "dict"):
            raise RagError(f"unknown runnable output {output!r}: use 'answer' or 'dict'")
        self.service = service  # rag_app.services.answer.AnswerService
        self.k = k
        self.output = output

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        return self._call_with_config(self._answer, input, config)

    def stream(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Iterator[Any]:
        yield from self._transform_stream_with_config(iter([input]), self._transform, config)

    async def astream(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> AsyncIterator[Any]:
        async def single() -> AsyncIterator[Any]:
            yield input

        async for item in self._atransform_stream_with_config(single(), self._atransform, config):
            yield item

    # -- one question ------------------------------------------------------------------------------------------------
    def _answer(self, value: Any) -> Any:
        final = None
        for final in self._pieces(value):
            pass
        return final

    def _pieces(self, value: Any) -> Iterator[Any]:
        question, history = parse_input(value)
        for item in self.service.stream(question, history=history, k=self.k):
            yield item if isinstance(item, str) else self._render(item)

    def _render(self, answer) -> Any:
        return answer.to_dict() if self.output == "dict" else answer

    def _transform(self, inputs: Iterator[Any]) -> Iterator[Any]:
        for value in inputs:
            yield from self._pieces(value)

    async def _atransform(self, inputs: AsyncIterator[Any], config: RunnableConfig) -> AsyncIterator[Any]:
        async for value in inputs:
            pieces = self._pieces(value)
            while (item := await run_in_executor(config, next, pieces, _DONE)) is not _DONE:
                yield item


class RagEmbeddings(Embeddings):
    """Our embedder (by default the fast packaged MiniLM on the measured-fastest backend) as LangChain embeddings:
    unit-length vectors as lists of floats, usable with any LangChain vector store."""

    def __init__(self, embedder):
        self.embedder = embedder  # rag_app.components.embedder.Embedder

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embedder.embed(list(texts)).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.embedder.embed_query(text).tolist()


# -- input ---------------------------------------------------------------------------------------------------------------
def parse_input(value: Any) -> tuple[str, list[dict[str, str]]]:
    """(question, history as `{"role", "content"}` dicts) from any input `RagRunnable` accepts."""
    if isinstance(value, str):
        return value, []
    if isinstance(value, BaseMessage):
        return _text(value.content), []
    if isinstance(value, dict):
        question = value.get("question", value.get("input"))
        if question is None:
            raise RagError(f"the runnable's input has no 'question' (keys: {sorted(value)})")
        history = value.get("history", value.get("chat_history")) or []
        return parse_input(question)[0], to_history(history)
    if isinstance(value, Sequence) and value:
        messages = convert_to_messages(value)
        return _text(messages[-1].content), to_history(messages[:-1])
    raise RagError(f"the runnable takes a question (str), a dict with 'question', or messages; got "
                   f"{type(value).__name__}")


def to_history(items: Sequence[Any]) -> list[dict[str, str]]:
    """Earlier turns for the answer service: user and assistant messages (system messages are left out)."""
    turns = []
    for item in items:
        if isinstance(item, dict) and "role" in item:
            role, content = str(item["role"]), _text(item.get("content", ""))
        else:
            message = convert_to_messages([item])[0]
            role, content = _ROLES.get(message.type, message.type), _text(message.content)
        if role in ("user", "assistant"):
            turns.append({"role": role, "content": content})
    return turns


def _text(content: Any) -> str:
    """A message's text: its content string, or the text parts of a list of content blocks."""
    if isinstance(content, str):
        return content
    parts = [part if isinstance(part, str) else part.get("text", "") for part in content or []
             if isinstance(part, str) or (isinstance(part, dict) and part.get("type", "text") == "text")]
    return "".join(parts)

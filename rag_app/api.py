"""The Python API: `from rag_app import RAG`.

    rag = RAG()                          # defaults: packaged models, data under RAG_HOME
    rag.ingest(["docs/"])                # -> IngestSummary
    answer = rag.ask("What is a VAE?")   # -> Answer (text, refused, sources, timings, model)

A face like the CLI and the UI: it builds components once and calls services. From LangChain:
`rag.as_retriever()`, `rag.as_runnable()`, `rag.as_embeddings()` and `rag.ingest_documents(loader.load())`
(see docs/langchain.md); LangChain is imported only when one of them is used.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag_app.settings import Settings

if TYPE_CHECKING:
    from ingest.chunking import TextSplitter
    from ingest.pipeline import IngestSummary, ProgressCallback
    from rag_app.components.lexical import DerivedLexicalIndex
    from rag_app.components.store import CollectionInfo, Hit, VectorStore
    from rag_app.services.answer import Answer, AnswerService
    from rag_app.services.documents import DocumentInfo
    from rag_app.services.protocols import Embeds, LanguageModel
    from rag_app.services.retrieve import Retriever


def bundled_corpus_dir() -> Path:
    """The knowledge base shipped with the app."""
    return Path(__file__).resolve().parents[1] / "corpus"


class RAG:
    """Local question answering over your documents.

    Args:
        settings: a `Settings`; by default read from the environment (`RAG_*`).
        embedder, llm: ready components to use instead of building them from settings (tests, custom backends).
            `embedder` may also be a LangChain `Embeddings` (wrapped by
            `rag_app.components.langchain_embedder.LangChainEmbedder`), and `llm` a LangChain chat model
            (wrapped by `rag_app.components.langchain_llm.LangChainChatLLM`: answers take the generative path).
        **overrides: settings overrides on top of `settings`: top-level ones by name and `collection` for
            `store.collection` (`RAG(collection="papers", home="/data")`), any other by its dotted path
            (`RAG(**{"retrieve.k": 8})`).

    Raises:
        SettingsError: an unknown setting (the message names the closest valid one) or a bad value.
    """

    def __init__(self, settings: Settings | None = None, *, embedder=None, llm=None, **overrides: Any):
        settings = settings or Settings()
        self.settings = settings.with_overrides(**overrides) if overrides else settings
        if embedder is not None and _is_langchain(embedder, "Embeddings"):
            from rag_app.components.langchain_embedder import LangChainEmbedder

            embedder = LangChainEmbedder.wrap(embedder)
        if llm is not None and _is_langchain(llm, "BaseLanguageModel"):
            from rag_app.components.langchain_llm import LangChainChatLLM

            llm = LangChainChatLLM(llm)
        self._embedder = embedder
        self._embedders: dict[str, Embeds] = {}  # per collection, when built from the settings (see `embedder_for`)
        self._llm = llm
        self._stores: dict[str, VectorStore] = {}
        self._lexicals: dict[str, DerivedLexicalIndex] = {}  # per collection: the BM25 index its writes keep in step
        self._retrievers: dict[str, Retriever] = {}
        self._lock = threading.RLock()

    # -- components, built once ------------------------------------------------------------------------------------
    @property
    def embedder(self) -> Embeds:
        """The default collection's embedder (`embedder_for()`)."""
        return self.embedder_for()

    def embedder_for(self, collection: str | None = None, *, new: bool = False) -> Embeds:
        """The embedder whose vectors match a collection: the one given to `RAG(embedder=...)`, else built from the
        settings. Under `embedder.backend = "auto"` the collection decides: an existing one keeps the quantisation
        it recorded, a new one gets the fastest backend on this CPU (int8 where it has VNNI and no AMX); see
        `rag_app.components.embedder.backends.backend_for_collection`.

        Args:
            collection: the collection (default `settings.store.collection`).
            new: the embedder a collection that does not exist yet gets (`collection` is then ignored).
        """
        if self._embedder is not None:
            return self._embedder
        from rag_app.components.embedder import follows_collection, get_embedder

        if new:
            return get_embedder(self.settings, None)
        name = collection or self.settings.store.collection
        with self._lock:
            if name not in self._embedders:
                recorded = None
                if follows_collection(self.settings):
                    from rag_app.components.store import recorded_fingerprint
                    from rag_app.errors import StoreUnavailableError

                    try:
                        recorded = recorded_fingerprint(self.settings, name)
                    except StoreUnavailableError:
                        # A Chroma server that is down: a new collection's embedder for now (a server warming up
                        # loads a model), not remembered; the store decides once it answers (its open fails before).
                        return get_embedder(self.settings, None)
                self._embedders[name] = get_embedder(self.settings, recorded)
            return self._embedders[name]

    @property
    def llm(self) -> LanguageModel:
        if self._llm is None:
            from rag_app.components.llm import get_llm

            self._llm = get_llm(self.settings)
        return self._llm

    def store(self, collection: str | None = None, create: bool = True) -> VectorStore:
        """The collection's vector store, built once, with its lexical index's upkeep registered on its writes."""
        from rag_app.components.lexical_upkeep import kept_lexical_index
        from rag_app.components.store import VectorStore

        name = collection or self.settings.store.collection
        with self._lock:
            if name not in self._stores:
                store = VectorStore(self.settings, self.embedder_for(name).fingerprint, name, create=create)
                self._lexicals[name] = kept_lexical_index(self.settings, store)
                self._stores[name] = store
            return self._stores[name]

    def retriever(self, collection: str | None = None) -> Retriever:
        from rag_app.services.retrieve import Retriever

        name = collection or self.settings.store.collection
        with self._lock:
            if name not in self._retrievers:
                store = self.store(name)
                self._retrievers[name] = Retriever(self.settings, self.embedder_for(name), store,
                                                   lexical=self._lexicals[name])
            return self._retrievers[name]

    # -- services --------------------------------------------------------------------------------------------------
    def ingest(self, paths: list[str | Path] | str | Path, *, collection: str | None = None, prune: bool = False,
               progress: ProgressCallback | None = None, splitter: TextSplitter | None = None) -> IngestSummary:
        """Ingest files and folders incrementally; see `ingest.pipeline.IngestService`.

        `splitter`: a LangChain text splitter to cut with instead of our token-exact, structure-aware chunker.
        """
        from ingest.pipeline import IngestService

        if isinstance(paths, (str, Path)):
            paths = [paths]
        store = self.store(collection)
        service = IngestService(self.settings, self.embedder_for(store.name), store, splitter=splitter)
        return service.run(list(paths), prune=prune, progress=progress)

    def ingest_documents(self, documents: Iterable[Any], *, collection: str | None = None, prune: bool = False,
                         progress: ProgressCallback | None = None,
                         splitter: TextSplitter | None = None) -> IngestSummary:
        """Ingest LangChain `Document`s (a loader's `load()`, or the loader itself) with file ingest's guarantees.

        Documents are grouped by `metadata["source"]`; each source is updated as a whole (unchanged: nothing
        written; changed: new chunks first, then stale ones deleted), under the writer lock, crash-safely.

        Args:
            documents: `Document`s, or a LangChain loader (its `lazy_load()` is used).
            collection: the collection (default `settings.store.collection`).
            prune: delete sources ingested from documents earlier that are not among these.
            progress: called with a `Progress` as sources are done and chunks written.
            splitter: a LangChain text splitter to cut with instead of our chunker.

        Returns:
            The `IngestSummary` (its file counts count sources; bad documents are in `failed`/`skipped`).
        """
        from ingest.pipeline import IngestService

        if callable(getattr(documents, "lazy_load", None)):
            documents = documents.lazy_load()
        store = self.store(collection)
        service = IngestService(self.settings, self.embedder_for(store.name), store, splitter=splitter)
        return service.run_documents(documents, prune=prune, progress=progress)

    def ensure_corpus(self, progress: ProgressCallback | None = None) -> IngestSummary | None:
        """Ingest the bundled corpus into the default collection when that collection is empty, or again when the
        collection holds a bundled page in another version than the app's (an upgrade changed it): incrementally,
        so only the changed pages are embedded. None when there was nothing to do; a collection without the
        bundled pages is left as it is."""
        from ingest.discover import discover
        from ingest.units import file_sha256
        from rag_app.services.documents import stale_files

        corpus = bundled_corpus_dir()
        store = self.store()
        if store.count() > 0:
            pages = discover([corpus], int(self.settings.ingest.max_file_mb * 1_000_000)).files
            if not stale_files(store, {str(page.path): file_sha256(page.path) for page in pages}):
                return None
        return self.ingest([corpus], progress=progress)

    def retrieve(self, query: str, k: int | None = None, *, collection: str | None = None,
                 source_glob: str | None = None) -> list[Hit]:
        return self.retriever(collection).retrieve(query, k=k, source_glob=source_glob)

    def ask(self, question: str, history: list[dict] | None = None, *, collection: str | None = None,
            k: int | None = None) -> Answer:
        """Answer from the documents, with numbered sources; refuses when they don't say."""
        return self.answerer(collection).ask(question, history=history, k=k)

    def stream(self, question: str, history: list[dict] | None = None, *, collection: str | None = None,
               k: int | None = None) -> Iterator[str | Answer]:
        """Yield answer tokens as they are generated, then the final `Answer`."""
        return self.answerer(collection).stream(question, history=history, k=k)

    @staticmethod
    def standalone_turns(history: Iterable[dict]) -> list[dict]:
        """A chat's turns as `ask` and `stream` read them: each user turn gets its standalone form (`"standalone"`),
        rewritten in order as `rag chat` records it, so a chain of follow-ups keeps its topic.

        Args:
            history: `{"role": "user" | "assistant", "content": str}` turns, oldest first.
        """
        from rag_app.services.prompting import rewrite_followup

        turns: list[dict] = []
        for turn in history:
            row = dict(turn)
            if row.get("role") == "user":
                row["standalone"] = rewrite_followup(row.get("content", ""), turns)
            turns.append(row)
        return turns

    # -- LangChain face (rag_app/integrations/langchain.py, imported only here) ------------------------------------
    def as_retriever(self, *, k: int | None = None, collection: str | None = None, source_glob: str | None = None):
        """This collection's retriever as a LangChain `BaseRetriever` returning `Document`s (sync and async).

        Args:
            k: documents per query (default `settings.retrieve.k`).
            collection: the collection (default `settings.store.collection`).
            source_glob: keep only chunks whose source matches, e.g. "papers/*.pdf".
        """
        from rag_app.integrations.langchain import RagRetriever

        return RagRetriever(retriever=self.retriever(collection), k=k, source_glob=source_glob)

    def as_runnable(self, *, collection: str | None = None, k: int | None = None, output: str = "answer"):
        """The answerer as a LangChain `Runnable`: a question (or `{"question", "history"}`) in, an `Answer` out.

        `invoke`, `batch`, `stream` (text pieces, then the final output) and their async variants all work, so it
        composes with `|` and with `RunnableWithMessageHistory` (use `output="dict"` there: `Answer.to_dict()`,
        read with `output_messages_key="answer"`).
        """
        from rag_app.integrations.langchain import RagRunnable

        return RagRunnable(self.answerer(collection), k=k, output=output)

    def as_embeddings(self):
        """Our embedder (the fast packaged one by default) as LangChain `Embeddings`, for any LangChain vector store."""
        from rag_app.integrations.langchain import RagEmbeddings

        return RagEmbeddings(self.embedder)

    def answerer(self, collection: str | None = None, *, retriever=None) -> AnswerService:
        """The answer service `ask` and `stream` use: this app's LM and embedder over a collection's retriever.

        Args:
            collection: the collection (default `settings.store.collection`).
            retriever: what to retrieve with instead of the collection's retriever: any object with
                `retrieve(query, k=...)`, e.g. one that wraps `self.retriever(collection)` (the answer evals hide a
                question's article this way).
        """
        from rag_app.services.answer import AnswerService

        return AnswerService(self.settings, retriever or self.retriever(collection), self.llm,
                             self.embedder_for(collection))

    def model_file(self, which: str) -> str:
        """Where the embedder's (`which="embedder"`) or the LM's (`"llm"`) files are, checked without loading.

        Raises:
            RagError: the packaged model is not installed (the message names the install command).
        """
        from rag_app.components.packaged_models import is_packaged, packaged_embedder_path, packaged_llm
        from rag_app.settings import PACKAGED_EMBEDDER

        settings = self.settings
        if which == "embedder":
            return packaged_embedder_path() if settings.embedder.model == PACKAGED_EMBEDDER else settings.embedder.model
        if settings.llm.mode != "transformers":
            return f"mode {settings.llm.mode} ({settings.llm.base_url or 'no URL'})"
        if is_packaged(settings.llm.model):
            paths = packaged_llm(settings.llm.model).part_paths()  # a RagError says how to install it
            return str(paths[0]) if len(paths) == 1 else f"{len(paths)} parts, from {paths[0]}"
        return settings.llm.model

    def collections(self) -> list[CollectionInfo]:
        """Every collection of the store, with its chunk count and embedder."""
        from rag_app.components.store import list_collections

        return list_collections(self.settings)

    def documents(self, collection: str | None = None) -> list[DocumentInfo]:
        """The files ingested into a collection, one entry each, sorted by source ([] when it does not exist)."""
        from rag_app.services.documents import list_documents

        name = collection or self.settings.store.collection
        if name not in self._stores and not any(info.name == name for info in self.collections()):
            return []
        return list_documents(self.store(name))

    def delete_document(self, path: str, *, collection: str | None = None) -> int:
        """Delete every chunk of one ingested file (its `path` as listed by `documents()`); returns the count.

        An uploaded copy inside the data home goes too, so re-ingesting the uploads does not bring it back.
        """
        from rag_app.services.documents import delete_document

        return delete_document(self.settings, self.store(collection), path)

    def drop_collection(self, collection: str | None = None) -> bool:
        """Delete a whole collection and its indexes; returns False when there was no such collection."""
        name = collection or self.settings.store.collection
        if not any(info.name == name for info in self.collections()):
            return False
        with self._lock:
            store = self.store(name)
            self._stores.pop(name, None)
            self._embedders.pop(name, None)  # a collection made again under this name is a new one
            self._lexicals.pop(name, None)
            self._retrievers.pop(name, None)
        store.drop()
        return True


def _is_langchain(obj: Any, base: str) -> bool:
    """Is `obj` an instance of LangChain's `base` class? Read from its class hierarchy: nothing is imported."""
    return any(cls.__name__ == base and cls.__module__.startswith("langchain_core")
               for cls in type(obj).__mro__)

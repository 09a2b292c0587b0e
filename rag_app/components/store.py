"""The vector store: a Chroma collection in cosine space, embedded (PersistentClient) or remote (HttpClient).

We pass our own embeddings, so Chroma never loads (or downloads) an embedding model of its own. Each collection
records the embedder that built it; using it with another embedder is refused.

The write protocol: every change goes through `with store.write():` (`upsert`, `update_metadata` and `delete`
refuse to run outside it). It takes the single-writer lock of an embedded store, changes the collection's
generation stamp before the first change and after the last, and on the way out, still under the lock, calls the
after-write hooks with a `WriteRun` (what the run changed, the final stamp): the standing ones that files derived
from the collection registered (`after_write(hook, every_run=True)`: the BM25 index's upkeep,
`rag_app.components.lexical_upkeep`), then the run's own (the ingest service's unit catalog). The store knows
nothing of what derives from it.

On a Chroma server there is no writer lock and other processes derive their own indexes, so each run also writes
what it touches to the collection's change log (`rag_app.components.change_log`) before touching it;
`changes_since` reads it back.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import numpy as np

from rag_app.components.change_log import LOG_OF_KEY, LOG_SUFFIX, ChangeLog, ChangeSet
from rag_app.errors import EmbedderMismatchError, RagError, StoreLockedError, StoreUnavailableError
from rag_app.settings import Settings

EMBEDDER_KEY = "rag:embedder"
GENERATION_KEY = "rag:generation"
#: Most ids one write run remembers for its hooks (e.g. the lexical delta); past it `WriteRun.written` is None.
_MAX_TRACKED = 200_000


@dataclass
class Hit:
    id: str
    text: str
    metadata: dict[str, Any]
    score: float  # cosine similarity for dense hits; retriever-specific otherwise
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class WriteRun:
    """What one `with store.write():` run did, as its after-write hooks see it."""

    changed: bool  # whether anything was written or deleted
    before: str | None  # the generation stamp from before the run's first change (None when nothing changed)
    written: set[str] | None  # ids upserted or updated; None when there were too many to track
    removed: set[str] | None  # ids deleted; None when there were too many to track
    final: str | None  # the stamp the run set last (None when nothing changed)
    store: VectorStore

    @functools.cached_property
    def stamp(self) -> str:
        """The generation stamp the collection has now (read from the store when this run changed nothing)."""
        return self.final or self.store.generation()


@dataclass
class CollectionInfo:
    name: str
    count: int
    embedder: str | None


def _split_url(url: str) -> tuple[str, int, bool]:
    parsed = urlparse(url if "://" in url else f"http://{url}")
    if not parsed.hostname:
        raise RagError(f"invalid Chroma URL {url!r}: expected e.g. http://127.0.0.1:8000")
    ssl = parsed.scheme == "https"
    return parsed.hostname, parsed.port or (443 if ssl else 8000), ssl


@contextlib.contextmanager
def _server_errors(url: str | None) -> Iterator[None]:
    """Turn a dead Chroma server into one clear message that names the URL."""
    try:
        yield
    except RagError:
        raise
    except Exception as exc:  # noqa: BLE001
        if url is None:
            raise
        text = f"{type(exc).__name__}: {exc}"
        markers = ("connect", "Connection", "refused", "timed out", "Timeout", "unavailable", "503", "502")
        if any(m in text for m in markers):
            raise StoreUnavailableError(
                f"the Chroma server at {url} is unreachable ({text[:200]}). Start it (`chroma run --path DIR "
                "--port PORT`) or fix --chroma-url / RAG_STORE__URL, then retry (an interrupted ingest resumes: "
                "finished files are kept, the rest is redone)"
            ) from exc
        raise


@functools.lru_cache(maxsize=8)
def _client(mode: str, location: str):
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
    if mode == "http":
        host, port, ssl = _split_url(location)
        with _server_errors(location):
            return chromadb.HttpClient(host=host, port=port, ssl=ssl, settings=chroma_settings)
    return chromadb.PersistentClient(path=location, settings=chroma_settings)


_opened: dict[str, Any] = {}  # embedded clients by location, once opened in this process


def get_client(settings: Settings):
    """One Chroma client per process and location."""
    from rag_app.settings import apply_offline_env

    apply_offline_env(settings)
    if settings.store.mode == "http":
        return _client("http", settings.store.url)
    location = str(settings.chroma_dir)
    opened = _opened.get(location)
    if opened is not None:
        # Opened already: no init lock, which another process holds while it opens the store (a background merge
        # starting up held every query of this process for ~0.5 s, via `generation()`).
        return opened
    settings.chroma_dir.mkdir(parents=True, exist_ok=True)
    # Two processes opening a new store at once would both create its schema ("table ... already exists").
    with _init_lock(settings):
        client = _opened[location] = _client("persistent", location)
    return client


def _init_lock(settings: Settings):
    """Serialise schema and collection creation across processes on an embedded store (a no-op for a server)."""
    if settings.store.mode == "http":
        return contextlib.nullcontext()
    from filelock import FileLock

    settings.chroma_dir.mkdir(parents=True, exist_ok=True)
    return FileLock(str(settings.chroma_dir / "rag-init.lock"), timeout=120)


def list_collections(settings: Settings) -> list[CollectionInfo]:
    client = get_client(settings)
    with _server_errors(settings.store.url):
        infos = []
        for item in client.list_collections():
            collection = client.get_collection(item if isinstance(item, str) else item.name)
            if LOG_OF_KEY in (collection.metadata or {}):
                continue  # a collection's change log, not a collection of documents
            infos.append(CollectionInfo(collection.name, collection.count(), (collection.metadata or {}).get(EMBEDDER_KEY)))
    return sorted(infos, key=lambda info: info.name)


def recorded_fingerprint(settings: Settings, name: str) -> str | None:
    """The embedder fingerprint collection `name` recorded ('' if none); None when there is no such collection."""
    client = get_client(settings)
    with _server_errors(settings.store.url):
        try:
            collection = client.get_collection(name, embedding_function=None)
        except Exception as exc:  # noqa: BLE001
            if "does not exist" in str(exc) or "NotFound" in type(exc).__name__:
                return None
            raise
    return str((collection.metadata or {}).get(EMBEDDER_KEY) or "")


def _delete_collection(settings: Settings, name: str) -> None:
    client = get_client(settings)
    with _server_errors(settings.store.url):
        client.delete_collection(name)
        if settings.store.mode == "http":
            with contextlib.suppress(Exception):  # a store from before the change log has none
                client.delete_collection(name + LOG_SUFFIX)


class VectorStore:
    """One Chroma collection bound to one embedder fingerprint."""

    def __init__(self, settings: Settings, embedder_fingerprint: str, collection: str | None = None, create: bool = True):
        self.settings = settings
        self.url = settings.store.url if settings.store.mode == "http" else None
        self.name = collection or settings.store.collection
        self.embedder_fingerprint = embedder_fingerprint
        self._writing = threading.local()  # per thread: depth of open `write()` blocks, and whether they changed data
        self._standing_hooks: list[Callable[[WriteRun], None]] = []  # `after_write(..., every_run=True)`
        client = get_client(settings)
        with _server_errors(self.url), _init_lock(settings):
            if create:
                self._collection = client.get_or_create_collection(
                    self.name,
                    metadata={"hnsw:space": "cosine", EMBEDDER_KEY: embedder_fingerprint},
                    embedding_function=None,
                )
            else:
                try:
                    self._collection = client.get_collection(self.name, embedding_function=None)
                except Exception as exc:  # noqa: BLE001
                    if "does not exist" in str(exc) or "NotFound" in type(exc).__name__:
                        raise RagError(
                            f"collection {self.name!r} does not exist: ingest into it first (`rag ingest PATH "
                            f"--collection {self.name}`) or pick one from `rag collections`"
                        ) from exc
                    raise
        recorded = (self._collection.metadata or {}).get(EMBEDDER_KEY)
        if recorded and recorded != embedder_fingerprint:
            from rag_app.components.embedder.backends import backend_hint

            fix = backend_hint(recorded, embedder_fingerprint) or "RAG_EMBEDDER__MODEL, RAG_EMBEDDER__BACKEND"
            raise EmbedderMismatchError(
                f"collection {self.name!r} was built with embedder {recorded!r}, but the configured embedder is "
                f"{embedder_fingerprint!r}. Use the original embedder ({fix}), pick another --collection, or "
                f"rebuild it with `rag ingest PATH --collection {self.name} --rebuild`"
            )
        self._log = (ChangeLog(client, self.name, functools.partial(_server_errors, self.url),
                               settings.store.change_log_retention_s) if self.url is not None else None)

    # -- reads -----------------------------------------------------------------------------------------------------
    def count(self) -> int:
        with _server_errors(self.url):
            return self._collection.count()

    def get(self, ids: Sequence[str], include_documents: bool = True) -> dict[str, Any]:
        include = ["metadatas", "documents"] if include_documents else ["metadatas"]
        with _server_errors(self.url):
            return self._collection.get(ids=list(ids), include=include)

    def get_where(self, where: dict[str, Any], include_documents: bool = False) -> dict[str, Any]:
        include = ["metadatas", "documents"] if include_documents else ["metadatas"]
        with _server_errors(self.url):
            return self._collection.get(where=where, include=include)

    def iter_records(self, page_size: int = 5000, include_documents: bool = False) -> Iterator[tuple[str, dict, str | None]]:
        """Every (id, metadata, document-or-None) in the collection, page by page."""
        include = ["metadatas", "documents"] if include_documents else ["metadatas"]
        offset = 0
        while True:
            with _server_errors(self.url):
                page = self._collection.get(limit=page_size, offset=offset, include=include)
            ids = page["ids"]
            if not ids:
                return
            documents = page.get("documents") or [None] * len(ids)
            yield from zip(ids, page["metadatas"], documents)
            offset += len(ids)

    def query(self, vector: np.ndarray, k: int, where: dict[str, Any] | None = None) -> list[Hit]:
        k = min(k, self.count())
        if k <= 0:
            return []
        with _server_errors(self.url):
            result = self._collection.query(
                query_embeddings=[np.asarray(vector, dtype=np.float32).tolist()],
                n_results=k,
                where=where,
                include=["metadatas", "documents", "distances"],
            )
        return [
            Hit(id=i, text=doc, metadata=meta or {}, score=1.0 - float(dist))
            for i, doc, meta, dist in zip(
                result["ids"][0], result["documents"][0], result["metadatas"][0], result["distances"][0]
            )
        ]

    def query_ids(self, vector: np.ndarray, k: int, where: dict[str, Any] | None = None) -> list[tuple[str, float]]:
        """(id, cosine) of the k nearest chunks, best first, without reading texts (~4x faster than `query`)."""
        if k <= 0:
            return []
        # (Chroma 1.x returns fewer results, without error, when k exceeds the collection.)
        with _server_errors(self.url):
            result = self._collection.query(query_embeddings=[np.asarray(vector, dtype=np.float32).tolist()],
                                            n_results=k, where=where, include=["distances"])
        return [(rid, 1.0 - float(dist)) for rid, dist in zip(result["ids"][0], result["distances"][0])]

    def get_embeddings(self, ids: Sequence[str]) -> dict[str, np.ndarray]:
        """The stored vectors of some chunks, by id (ids not stored are left out)."""
        with _server_errors(self.url):
            result = self._collection.get(ids=list(ids), include=["embeddings"])
        return {rid: np.asarray(vec, dtype=np.float32) for rid, vec in zip(result["ids"], result["embeddings"])}

    @functools.cached_property
    def _server_hybrid(self):
        from rag_app.components.server_search import probe

        return probe(self._collection, functools.partial(_server_errors, self.url)) if self.url else None

    @property
    def server_hybrid(self) -> bool:
        """Whether the server runs hybrid search here (`rag_app.components.server_search`; probed once): distributed
        Chroma or Chroma Cloud with a sparse BM25 index on the collection. Never for an embedded store."""
        return self._server_hybrid is not None

    def hybrid_search(self, query: str, vector: np.ndarray, k: int, where: dict[str, Any] | None = None, *,
                      rrf_k: int = 60, dense_weight: float = 0.5) -> list[tuple[str, float]]:
        """(id, fused score) of the k best chunks by the server's Rrf of dense and sparse BM25 Knn, best first."""
        if self._server_hybrid is None:
            raise RagError(f"the store of collection {self.name!r} cannot run hybrid search on its server (check "
                           "`server_hybrid` first); use the retriever's local hybrid mode")
        return self._server_hybrid.search(self._collection, query, vector, k, where, rrf_k=rrf_k,
                                          dense_weight=dense_weight)

    # -- generation stamp: changes before and after every write run, so derived indexes know when to rebuild ------
    def generation(self) -> str:
        with _server_errors(self.url):
            self._collection = get_client(self.settings).get_collection(self.name, embedding_function=None)
        return str((self._collection.metadata or {}).get(GENERATION_KEY, ""))

    def _bump_generation(self, stamp: str | None = None) -> str:
        import uuid

        stamp = stamp or uuid.uuid4().hex
        metadata = {k: v for k, v in (self._collection.metadata or {}).items() if not k.startswith("hnsw:")}
        metadata[GENERATION_KEY] = stamp
        metadata[EMBEDDER_KEY] = self.embedder_fingerprint
        with _server_errors(self.url):
            self._collection.modify(metadata=metadata)
        return stamp

    # -- writes ----------------------------------------------------------------------------------------------------
    def writer_lock(self, timeout_s: float = 600.0):
        """Embedded Chroma is single-writer: serialise writers across processes with a file lock."""
        if self.url is not None:
            return contextlib.nullcontext()
        return _WriterLock(self.settings.chroma_dir / "rag-writer.lock", timeout_s)

    @contextlib.contextmanager
    def write(self, timeout_s: float = 600.0) -> Iterator[VectorStore]:
        """The one way to change the collection (see the module docstring); blocks may nest in one thread.

        Raises:
            StoreLockedError: another process held the writer lock for over `timeout_s`.
        """
        state = self._writing
        if getattr(state, "depth", 0):
            state.depth += 1
            try:
                yield self
            finally:
                state.depth -= 1
            return
        with self.writer_lock(timeout_s):
            state.depth, state.changed = 1, False
            state.before, state.written, state.removed = None, set(), set()
            state.hooks = []
            final = None
            try:
                yield self
            finally:
                state.depth = 0
                if state.changed:
                    final = self._close_run(state.run)
            run = WriteRun(state.changed, state.before, state.written, state.removed, final, self)
            hooks, state.hooks = [*self._standing_hooks, *state.hooks], []
            for hook in hooks:
                hook(run)

    @property
    def single_writer(self) -> bool:
        """True for an embedded store: `write()` holds a lock that no other writer gets past."""
        return self.url is None

    def after_write(self, hook: Callable[[WriteRun], None], *, every_run: bool = False) -> None:
        """Call `hook(run)` when a write run ends normally, still under the writer lock, with the `WriteRun` (for
        files derived from the collection: they are brought up to date, or stamped with `run.stamp`).

        Args:
            hook: called with the run's `WriteRun`.
            every_run: False: only when the current run ends (call it inside `with store.write():`). True: at the
                end of every run of this store object from now on, before the runs' own hooks (may be called at any
                time).
        """
        if every_run:
            self._standing_hooks.append(hook)
            return
        if not getattr(self._writing, "depth", 0):
            raise RuntimeError("after_write() outside `with store.write():`")
        self._writing.hooks.append(hook)

    def _track(self, kind: str, ids: Sequence[str]) -> None:
        """Remember the ids a write run touched (for its hooks); past a bound, give up (`None`: hooks rebuild)."""
        state = self._writing
        if state.written is None:
            return
        getattr(state, kind).update(ids)
        if len(state.written) + len(state.removed) > _MAX_TRACKED:
            state.written = state.removed = None

    def _before_change(self) -> None:
        state = self._writing
        if not getattr(state, "depth", 0):
            raise RuntimeError(f"write to collection {self.name!r} outside `with store.write():` (see store.py)")
        if not state.changed:
            import uuid

            state.before = self.generation()  # re-read: another process may have written since we last looked
            state.run, state.seq = uuid.uuid4().hex, 0
            if self._log is not None:
                self._log.open_run(state.run, state.before)
            self._bump_generation(state.run)  # tell derived indexes a change has started, before it happens
            state.changed = True

    def _log_ids(self, ids: Sequence[str]) -> None:
        """On a server: announce in the change log the ids the current call is about to touch."""
        if self._log is not None:
            state = self._writing
            state.seq += 1
            self._log.record(state.run, state.seq, ids)

    def _close_run(self, run: str) -> str:
        import uuid

        final = uuid.uuid4().hex
        if self._log is not None:
            self._log.close_run(run, final)
        return self._bump_generation(final)

    def changes_since(self, since: str, until: str, max_ids: int) -> ChangeSet | None:
        """The ids write runs touched between generation stamps `since` and `until`, from the change log; None when
        the store keeps no log (an embedded store: its writers update derived indexes under the writer lock) or the
        log does not connect the two stamps (see `rag_app.components.change_log`)."""
        if self._log is None or not since:
            return None
        return self._log.changes(since, until, max_ids)

    def _max_batch(self) -> int:
        try:
            return int(get_client(self.settings).get_max_batch_size())
        except Exception:  # noqa: BLE001 - older clients
            return 5000

    def upsert(self, ids: Sequence[str], embeddings: np.ndarray, texts: Sequence[str], metadatas: Sequence[dict]) -> None:
        self._before_change()
        self._track("written", ids)
        self._log_ids(ids)
        step = self._max_batch()
        for start in range(0, len(ids), step):
            end = start + step
            with _server_errors(self.url):
                self._collection.upsert(
                    ids=list(ids[start:end]),
                    embeddings=np.asarray(embeddings[start:end], dtype=np.float32),
                    documents=list(texts[start:end]),
                    metadatas=list(metadatas[start:end]),
                )

    def update_metadata(self, ids: Sequence[str], metadatas: Sequence[dict]) -> None:
        self._before_change()
        self._track("written", ids)
        self._log_ids(ids)
        step = self._max_batch()
        for start in range(0, len(ids), step):
            with _server_errors(self.url):
                self._collection.update(ids=list(ids[start : start + step]), metadatas=list(metadatas[start : start + step]))

    def delete(self, ids: Sequence[str]) -> None:
        ids = list(ids)
        if not ids:
            return
        self._before_change()
        self._track("removed", ids)
        self._log_ids(ids)
        step = self._max_batch()
        for start in range(0, len(ids), step):
            with _server_errors(self.url):
                self._collection.delete(ids=ids[start : start + step])


    def drop(self) -> None:
        """Delete the whole collection and its derived indexes (inside the writer lock); this object is unusable after."""
        import shutil

        with self.writer_lock():
            _delete_collection(self.settings, self.name)
            shutil.rmtree(self.settings.lexical_dir / self.name, ignore_errors=True)
            (self.settings.catalog_dir / f"{self.name}.json").unlink(missing_ok=True)


class _WriterLock:
    def __init__(self, path, timeout_s: float):
        from filelock import FileLock

        self.path = path
        self.timeout_s = timeout_s
        self._lock = FileLock(str(path))

    def __enter__(self):
        from filelock import Timeout

        try:
            self._lock.acquire(timeout=self.timeout_s)
        except Timeout as exc:
            raise StoreLockedError(
                f"another process has been writing to the store for over {self.timeout_s:g} s (lock {self.path}); "
                "wait for it to finish, or use a Chroma server (--chroma-url) for concurrent writers"
            ) from exc
        return self

    def __exit__(self, *exc_info):
        self._lock.release()
        return False

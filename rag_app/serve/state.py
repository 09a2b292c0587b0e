"""What one `rag serve` process holds: the `RAG`, whether its models are loaded, and the ingest jobs.

Models load once, on a background thread started with the server, so `/health` answers at once and `/ready` says
what is still loading. Requests share the `RAG` (its components are thread-safe: the LM serialises generation
behind its own lock, retrieval runs in parallel); nothing per request is kept here.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor

from rag_app.errors import RagError
from rag_app.serve.errors import NotFound, Unavailable
from rag_app.serve.jobs import JobRegistry

log = logging.getLogger("rag_app.serve")

MODEL_PREFIX = "rag:"


class ServeState:
    """The shared state of the app, reachable from a request as `request.app.state.serve`.

    Args:
        rag: the `RAG` to serve (tests hand one with the test profile's fakes).
        settings: its settings (the `serve` section is read from them).
        ensure_corpus: ingest the bundled corpus into the default collection at start-up when it is empty.
        label: the command named in its log lines (`rag mcp` holds one too).
    """

    def __init__(self, rag, settings, *, ensure_corpus: bool = False, label: str = "rag serve"):
        self.rag = rag
        self.label = label
        self.settings = settings
        self.collection = settings.store.collection
        self.ensure_corpus = ensure_corpus
        self.jobs = JobRegistry(rag, keep=settings.serve.jobs_kept)
        # Answers run on a fixed pool: a bounded number of threads (and of allocator arenas) however many requests.
        self.answer_pool = ThreadPoolExecutor(max_workers=settings.serve.answer_threads,
                                              thread_name_prefix="rag-answer")
        self.step = "starting"
        self.failure: str | None = None
        self.ready = threading.Event()
        self.started = time.time()
        self._thread: threading.Thread | None = None

    # -- start-up ----------------------------------------------------------------------------------------------------
    def start_loading(self) -> None:
        self._thread = threading.Thread(target=self._load, name="rag-serve-load", daemon=True)
        self._thread.start()

    def _load(self) -> None:
        try:
            self.step = "loading the embedder"
            self.rag.embedder.embed_query("warm up")
            self.step = "loading the LM"
            self.rag.llm.count_tokens("warm up")
        except RagError as exc:
            self.failure = str(exc)
        except Exception as exc:  # noqa: BLE001 - a bug in loading: keep the traceback in the log, report it on /ready
            traceback.print_exc()
            self.failure = f"{type(exc).__name__}: {exc}"
        if self.failure:
            print(f"{self.label}: the models failed to load: {self.failure}", file=sys.stderr, flush=True)
            return
        try:
            if self.ensure_corpus:
                self.step = "ingesting the bundled corpus"
                self.rag.ensure_corpus()
            self.step = "building the lexical index"
            self.rag.retrieve("warm up", collection=self.collection)
        except RagError as exc:  # e.g. the Chroma server is down: /ready reports it while it lasts
            print(f"{self.label}: warning: {exc}", file=sys.stderr, flush=True)
        self.step = "ready"
        self.ready.set()
        print(f"{self.label}: ready (collection {self.collection!r}, LM {self.rag.llm.name}, "
              f"embedder {self.rag.embedder.name}) after {time.time() - self.started:.1f} s", file=sys.stderr,
              flush=True)

    def require_ready(self) -> None:
        """Raises `Unavailable` (503, with the reason) until the models are loaded."""
        if self.failure:
            raise Unavailable(f"the models failed to load: {self.failure}")
        if not self.ready.is_set():
            raise Unavailable(f"the server is starting ({self.step}); retry when GET /ready answers 200",
                              headers={"Retry-After": "2"})

    def readiness(self) -> tuple[int, dict]:
        """(status code, body) of GET /ready: 200 when the models are loaded and the store answers."""
        if self.failure:
            return 503, {"status": "failed", "reason": f"the models failed to load: {self.failure}"}
        if not self.ready.is_set():
            return 503, {"status": "loading", "reason": self.step}
        try:
            collections = self.rag.collections()
        except RagError as exc:
            return 503, {"status": "store_unavailable", "reason": str(exc)}
        return 200, {"status": "ready", "collection": self.collection, "collections": len(collections),
                     "llm": self.rag.llm.name, "embedder": self.rag.embedder.name}

    def close(self) -> None:
        self.jobs.close()
        self.answer_pool.shutdown(wait=False, cancel_futures=True)

    # -- collections -------------------------------------------------------------------------------------------------
    def collection_names(self) -> list[str]:
        return [info.name for info in self.rag.collections()]

    def resolve(self, name: str | None, *, param: str = "collection", allow_new: bool = False) -> str:
        """The collection a request names: `rag:<name>`, a bare name, or nothing / `rag` for the default one.

        Raises:
            NotFound: no such collection (unless `allow_new`).
        """
        given = (name or "").strip()
        chosen = self.collection if given in {"", "rag"} else given.removeprefix(MODEL_PREFIX)
        if allow_new or chosen in self.collection_names():
            return chosen
        what = "model" if param == "model" else "collection"
        raise NotFound(f"unknown {what} {given or chosen!r}: GET /v1/models lists the collections as "
                       f"{MODEL_PREFIX}<collection>", param=param)

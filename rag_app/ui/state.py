"""What the Streamlit face keeps between reruns: the RAG object (once per process and configuration) and errors.

Settings come from the environment (`RAG_*`), so `RAG_PROFILE=test RAG_HOME=/tmp/x streamlit run streamlit_app.py`
runs the app on the fakes. The cache key includes those variables: tests that change them in one process get a
fresh RAG, and a user changing the model in the sidebar gets another one (components underneath are cached by
their own factories, so only what changed is loaded).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import streamlit as st

from rag_app.api import RAG
from rag_app.errors import RagError
from rag_app.settings import Settings

log = logging.getLogger("rag_app.ui")



def env_key() -> str:
    """The `RAG_*` environment, as a cache key."""
    return json.dumps(sorted((k, v) for k, v in os.environ.items() if k.startswith("RAG_")))


def load_settings(overrides: dict | None = None) -> Settings:
    """Settings from the environment plus the sidebar's overrides; a bad value is a `SettingsError` (a `RagError`)."""
    settings = Settings()
    return settings.with_overrides(**overrides) if overrides else settings


@st.cache_resource(show_spinner=False, max_entries=8)
def _cached_rag(env: str, overrides_json: str) -> RAG:
    del env  # part of the cache key only
    return RAG(load_settings(json.loads(overrides_json)))


def get_rag(overrides: dict | None = None) -> RAG:
    """The RAG for the current environment and sidebar overrides, built once per process."""
    return _cached_rag(env_key(), json.dumps(overrides or {}, sort_keys=True))


@dataclass
class StartUp:
    """What the app does once per process and environment: the bundled-corpus check and the model warm-up."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    corpus_checked: bool = False
    warmed: bool = False


@st.cache_resource(show_spinner=False, max_entries=8)
def _start_up(env: str) -> StartUp:
    del env  # part of the cache key only
    return StartUp()


def ensure_corpus(rag: RAG) -> None:
    """On first start with an empty default collection, ingest the bundled corpus with a visible progress bar."""
    once = _start_up(env_key())
    if once.corpus_checked:
        return
    with once.lock:
        if once.corpus_checked:
            return
        if rag.store().count() == 0:
            from rag_app.ui.components import progress_reporter

            with st.status("First start: indexing the bundled corpus…", expanded=True) as status:
                summary = rag.ensure_corpus(progress=progress_reporter(st.progress(0.0)))
                if summary is not None:
                    status.update(label=f"Indexed the bundled corpus: {summary.files.added} files, "
                                        f"{summary.chunks_written} chunks", state="complete", expanded=False)
        once.corpus_checked = True


def warm_up(rag: RAG) -> None:
    """Load and warm the embedder and the LM in the background, once per process, so the first question does not
    wait.

    Both components serialise their own loading, so a question asked meanwhile simply waits for it; a loading
    error is logged here and shown when a question needs the model.
    """
    once = _start_up(env_key())
    with once.lock:
        if once.warmed:
            return
        once.warmed = True

    def load() -> None:
        try:
            # One real question, not just the loading: it also compiles the embedder, runs the LM's first forward
            # passes and caches the span prompt's KV state, which the first user question would otherwise pay for.
            rag.ask("What is a variational autoencoder?")
        except Exception:  # noqa: BLE001 - reported again, as a message, on first use
            log.warning("warming up the models failed", exc_info=True)

    threading.Thread(target=load, name="rag-warm-up", daemon=True).start()


@contextlib.contextmanager
def guard(what: str = "That") -> Iterator[None]:
    """Show errors on the page, never a traceback: a `RagError` as its message, anything else briefly (and logged).

    The same message is shown once per run (a dead store fails the start-up check and the page alike).
    """
    try:
        yield
    except RagError as exc:
        _show_error(str(exc), ":material/error:")
    except Exception as exc:  # noqa: BLE001 - the page must survive a bug; the console keeps the traceback
        log.exception("unexpected error in the Streamlit app")
        _show_error(f"{what} failed unexpectedly ({type(exc).__name__}: {str(exc)[:200]}). "
                    "The details are in the server console.", ":material/bug_report:")


def new_run() -> None:
    """Call at the top of each run: forget the errors shown by the previous one."""
    st.session_state["_errors_shown"] = set()


def _show_error(message: str, icon: str) -> None:
    shown = st.session_state.setdefault("_errors_shown", set())
    if message not in shown:
        shown.add(message)
        st.error(message, icon=icon)


# Widgets whose values outlive a page switch (Streamlit drops the state of widgets a run does not draw).
PERSISTENT_KEYS = ("collection", "k", "llm_model", "temperature", "show_chunks")


def keep_widget_state() -> None:
    """Re-assign the shared widget values each run, which keeps them when the page that draws them is not shown."""
    for key in PERSISTENT_KEYS:
        if key in st.session_state:
            st.session_state[key] = st.session_state[key]

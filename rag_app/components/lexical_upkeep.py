"""The BM25 index of a collection, built from the settings and kept in step with the store's writes.

The store knows nothing of retrieval: the index registers its own upkeep as a standing after-write hook
(`store.after_write(hook, every_run=True)`), so every `with store.write():` run ends, still under the writer lock,
with the index brought up to date. The composition root (`rag_app.api.RAG.store`) does this once per collection;
a process that writes without it (dense mode, another process, a Chroma server) is caught up by the index's
generation check on the next query.
"""

from __future__ import annotations

from rag_app.components.lexical import DerivedLexicalIndex
from rag_app.components.lexical_merge import BackgroundMerges
from rag_app.components.store import VectorStore, WriteRun
from rag_app.settings import Settings


def lexical_index(settings: Settings, store: VectorStore) -> DerivedLexicalIndex:
    """The lexical index derived from `store`'s collection, configured by `settings.retrieve` (no upkeep; its
    merges run in a background process unless `retrieve.lexical_merge` is "inline")."""
    merges = BackgroundMerges(settings, store) if settings.retrieve.lexical_merge == "background" else None
    return DerivedLexicalIndex.from_settings(settings, store, start_merge=merges)


def kept_lexical_index(settings: Settings, store: VectorStore) -> DerivedLexicalIndex:
    """The lexical index of `store`, with its upkeep registered on the store's writes unless retrieval does not
    read it by default: dense only, or hybrid on a server that runs it itself (`store.server_hybrid`). Then it is
    built from the records on first need, like any stale index."""
    index = lexical_index(settings, store)
    mode = settings.retrieve.mode
    if mode == "lexical" or (mode == "hybrid" and not store.server_hybrid):
        store.after_write(lambda run: bring_up_to_date(index, run), every_run=True)
    return index


def bring_up_to_date(index: DerivedLexicalIndex, run: WriteRun) -> None:
    """After a write run: append its changes as a delta segment, or rebuild, or (nothing changed) make sure the
    index exists and matches the store."""
    if not run.changed:
        index.ensure()  # e.g. built for the first time, or after another process's write
    elif run.store.single_writer:
        # We held the writer lock: the run's own changes are all there is to add (a delta segment).
        index.apply_write(run.before, run.written, run.removed)
    else:
        index.refresh()  # a server has no writer lock: others may have written meanwhile

"""The lexical index: BM25 (bm25s, English Snowball stemming) over the chunks of one collection.

It is a *derived* index: always rebuilt from the vector store's own records, never written to by ingestion. That is
what keeps the two in sync, with the same ids, deletes and crash safety:

- Every write run of the ingest pipeline changes the collection's generation stamp before its first write and after
  its last. The index records the stamp (and record count) it was built from; whenever they differ from the store's,
  it is rebuilt from `store.iter_records(include_documents=True)`.
- It is saved atomically: built in a temporary folder whose `stamp.json` is written last, renamed into place, then
  named current by an atomic replace of the `CURRENT` pointer file. A crash at any point leaves either the old
  complete index or a stale stamp, and a stale stamp means "rebuild"; leftovers are swept by the next build.

What is indexed per chunk: its title (repeated `title_weight` times), its section path, and its text.
"""

from __future__ import annotations

import fnmatch
import functools
import json
import os
import re
import shutil
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from rag_app.errors import RagError

#: Bumped when the on-disk layout or the tokenisation changes, so old indexes are rebuilt rather than misread.
FORMAT_VERSION = 1
_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)  # words and numbers; "max_tokens" → "max", "tokens"


class RecordSource(Protocol):
    """What the index needs from a vector store (duck-typed, see `rag_app.components.store.VectorStore`)."""

    name: str

    def generation(self) -> str: ...

    def count(self) -> int: ...

    def iter_records(self, page_size: int = ..., include_documents: bool = ...) -> Iterable[tuple[str, dict, str | None]]: ...


@dataclass(frozen=True)
class LexicalConfig:
    """Index-time choices; a change means a rebuild (they are part of the stamp)."""

    k1: float = 1.2
    b: float = 0.75
    title_weight: int = 2
    stopwords: bool = True
    stem: bool = True

    @classmethod
    def from_settings(cls, retrieve) -> LexicalConfig:
        """From `settings.retrieve` (BM25 k1 and b, title weight)."""
        return cls(k1=retrieve.bm25_k1, b=retrieve.bm25_b, title_weight=retrieve.title_weight)


# -- tokenisation -------------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _stemmer():
    try:
        import Stemmer
    except ImportError as exc:
        raise RagError("lexical retrieval needs PyStemmer: run `pip install PyStemmer`") from exc
    return Stemmer.Stemmer("english")


@functools.lru_cache(maxsize=1)
def _stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN)


def tokenize(text: str, config: LexicalConfig = LexicalConfig()) -> list[str]:
    """Lower-cased word tokens, English stopwords dropped, Snowball-stemmed (the same for chunks and queries)."""
    tokens = _TOKEN.findall(text.lower())
    if config.stopwords:
        stop = _stopwords()
        tokens = [t for t in tokens if t not in stop]
    return _stemmer().stemWords(tokens) if config.stem else tokens


def indexed_text(metadata: dict[str, Any], text: str | None, title_weight: int) -> str:
    """What BM25 sees for one chunk: title (weighted by repetition), section path, text."""
    title = str(metadata.get("title") or "").strip()
    section = str(metadata.get("section") or "").strip()
    parts = [title] * title_weight if title else []
    if section and section != title:
        parts.append(section)
    parts.append(text or "")
    return "\n".join(parts)


# -- the index ----------------------------------------------------------------------------------------------------
class LexicalIndex:
    """An immutable BM25 index over chunk ids. Scores are computed from bm25s' precomputed per-term columns."""

    def __init__(self, ids: list[str], sources: list[str], bm25, config: LexicalConfig, stamp: dict[str, Any]):
        self.ids = ids
        self.sources = np.asarray(sources, dtype=object)
        self.bm25 = bm25
        self.config = config
        self.stamp = stamp
        self._masks: OrderedDict[str, np.ndarray] = OrderedDict()
        scores = bm25.scores
        self._data, self._indices, self._indptr = scores["data"], scores["indices"], scores["indptr"]

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def build(cls, records: Iterable[tuple[str, dict, str | None]], config: LexicalConfig,
              stamp: dict[str, Any]) -> LexicalIndex:
        import bm25s

        ids, sources, corpus = [], [], []
        for record_id, metadata, text in records:
            metadata = metadata or {}
            ids.append(record_id)
            sources.append(str(metadata.get("source", "")))
            corpus.append(tokenize(indexed_text(metadata, text, config.title_weight), config))
        bm25 = bm25s.BM25(k1=config.k1, b=config.b, method="lucene")
        if corpus:
            bm25.index(corpus, show_progress=False)
        else:
            bm25.scores = {"data": np.zeros(0, np.float32), "indices": np.zeros(0, np.int32),
                           "indptr": np.zeros(1, np.int32), "num_docs": 0}
            bm25.vocab_dict = {}
        return cls(ids, sources, bm25, config, stamp)

    def source_mask(self, source_glob: str) -> np.ndarray:
        """Boolean mask of the chunks whose source path matches the glob (cached per glob)."""
        mask = self._masks.get(source_glob)
        if mask is None:
            unique = set(self.sources.tolist())
            matching = {s for s in unique if fnmatch.fnmatch(s, source_glob)}
            mask = np.fromiter((s in matching for s in self.sources), dtype=bool, count=len(self.sources))
            self._masks[source_glob] = mask
            while len(self._masks) > 32:
                self._masks.popitem(last=False)
        return mask

    def matching_sources(self, source_glob: str) -> list[str]:
        return sorted({s for s in set(self.sources.tolist()) if fnmatch.fnmatch(s, source_glob)})

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every chunk for the query, (N,) float32; 0 where no query term occurs."""
        vocab = self.bm25.vocab_dict
        term_ids = [vocab[t] for t in tokenize(query, self.config) if t in vocab]
        out = np.zeros(len(self.ids), dtype=np.float32)
        if not term_ids:
            return out
        slices = [slice(self._indptr[t], self._indptr[t + 1]) for t in term_ids]
        rows = np.concatenate([self._indices[s] for s in slices])
        weights = np.concatenate([self._data[s] for s in slices])
        out += np.bincount(rows, weights=weights, minlength=len(self.ids)).astype(np.float32)
        return out

    def search(self, query: str, k: int, source_glob: str | None = None) -> list[tuple[str, float]]:
        """Top-k (chunk id, BM25 score), best first; chunks sharing no term with the query are left out."""
        if k <= 0 or not self.ids:
            return []
        scores = self.scores(query)
        if source_glob:
            scores = np.where(self.source_mask(source_glob), scores, 0.0)
        candidates = np.flatnonzero(scores > 0)
        if len(candidates) > k:
            candidates = candidates[np.argpartition(-scores[candidates], k - 1)[:k]]
        order = candidates[np.argsort(-scores[candidates], kind="stable")]
        return [(self.ids[i], float(scores[i])) for i in order]

    # -- persistence ----------------------------------------------------------------------------------------------
    def save_into(self, folder: Path) -> None:
        """Write the index files into an empty folder; `stamp.json` last (it marks the folder complete)."""
        import bm25s  # noqa: F401  (the BM25 object's own save)

        if self.ids:
            self.bm25.save(str(folder), show_progress=False)
        with open(folder / "records.json", "w", encoding="utf-8") as handle:
            json.dump({"ids": self.ids, "sources": self.sources.tolist()}, handle)
        _write_json_durably(folder / "stamp.json", {**self.stamp, "config": asdict(self.config)})

    @classmethod
    def load_from(cls, folder: Path) -> LexicalIndex:
        import bm25s

        stamp = json.loads((folder / "stamp.json").read_text(encoding="utf-8"))
        config = LexicalConfig(**stamp.pop("config"))
        records = json.loads((folder / "records.json").read_text(encoding="utf-8"))
        if records["ids"]:
            bm25 = bm25s.BM25.load(str(folder), mmap=False, show_progress=False)
        else:
            return cls.build([], config, stamp)
        return cls(records["ids"], records["sources"], bm25, config, stamp)


def _write_json_durably(path: Path, payload: dict) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(payload, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


# -- the derived, self-refreshing index of one collection ----------------------------------------------------------
class DerivedLexicalIndex:
    """The lexical index of one collection, kept equal to the store's records.

    Args:
        root: the folder of all lexical indexes (`settings.lexical_dir`); this one lives in `root / store.name`.
        store: the vector store it derives from.
        config: BM25 and tokenisation choices.
        check_s: how often `current()` re-reads the store's generation stamp (a metadata read).
    """

    def __init__(self, root: Path, store: RecordSource, config: LexicalConfig = LexicalConfig(), check_s: float = 0.5):
        self.folder = Path(root) / store.name
        self.store = store
        self.config = config
        self.check_s = check_s
        self._index: LexicalIndex | None = None
        self._checked_at = -1e9
        self._seen_pointer: tuple | None = None
        self._lock = threading.RLock()

    # What the index must have been built from to be current.
    def wanted_stamp(self) -> dict[str, Any]:
        return {"format": FORMAT_VERSION, "generation": self.store.generation(), "count": self.store.count(),
                "config": asdict(self.config)}

    @staticmethod
    def _matches(index: LexicalIndex | None, wanted: dict[str, Any]) -> bool:
        if index is None:
            return False
        have = {**index.stamp, "config": asdict(index.config)}
        return all(have.get(key) == value for key, value in wanted.items())

    def current(self) -> LexicalIndex:
        """The up-to-date index: checked against the store at most every `check_s`, reloaded or rebuilt if stale.

        A new index saved by any writer (its `CURRENT` pointer replaced) is noticed at once, without waiting.
        """
        with self._lock:
            now = time.monotonic()
            pointer = self._pointer()
            if self._index is not None and now - self._checked_at < self.check_s and pointer == self._seen_pointer:
                return self._index
            wanted = self.wanted_stamp()
            if not self._matches(self._index, wanted):
                self._index = self._load_or_build(wanted)
                pointer = self._pointer()
            self._seen_pointer = pointer
            self._checked_at = time.monotonic()
            return self._index

    def refresh(self) -> LexicalIndex:
        """Bring the index up to date now (the ingest pipeline's after-write hook)."""
        with self._lock:
            self._index = self._load_or_build(self.wanted_stamp())
            self._checked_at = time.monotonic()
            self._seen_pointer = self._pointer()
            return self._index

    def _load_or_build(self, wanted: dict[str, Any]) -> LexicalIndex:
        on_disk = self._load_current()
        if self._matches(on_disk, wanted):
            return on_disk
        from filelock import FileLock

        self.folder.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.folder / "build.lock")):
            on_disk = self._load_current()  # another process may have built it while we waited
            if self._matches(on_disk, wanted):
                return on_disk
            return self._build_and_save(wanted)

    def _pointer(self) -> tuple | None:
        """Identity of the `CURRENT` pointer file (replaced atomically by every save): a cheap stat."""
        try:
            info = os.stat(self.folder / "CURRENT")
        except OSError:
            return None
        return info.st_ino, info.st_mtime_ns, info.st_size

    def _load_current(self) -> LexicalIndex | None:
        try:
            name = (self.folder / "CURRENT").read_text(encoding="utf-8").strip()
            return LexicalIndex.load_from(self.folder / name)
        except (OSError, ValueError, KeyError, TypeError):
            return None  # missing, half-deleted or from another format: rebuilt by the caller

    def _build_and_save(self, wanted: dict[str, Any]) -> LexicalIndex:
        stamp = {k: v for k, v in wanted.items() if k != "config"}
        records = self.store.iter_records(include_documents=True)
        index = LexicalIndex.build(records, self.config, stamp)
        after = self.wanted_stamp()
        if not self._matches(index, after):
            # A write run moved the store while we read it: keep serving this snapshot, but don't persist it.
            return index
        tmp = self.folder / f"tmp-{uuid.uuid4().hex[:12]}"
        tmp.mkdir()
        index.save_into(tmp)
        final = self.folder / f"index-{uuid.uuid4().hex[:12]}"
        os.rename(tmp, final)
        pointer = self.folder / "CURRENT"
        tmp_pointer = self.folder / f".CURRENT.{uuid.uuid4().hex[:8]}"
        tmp_pointer.write_text(final.name, encoding="utf-8")
        os.replace(tmp_pointer, pointer)
        for old in self.folder.iterdir():
            if old.is_dir() and old.name != final.name and old.name.startswith(("index-", "tmp-")):
                shutil.rmtree(old, ignore_errors=True)
        return index

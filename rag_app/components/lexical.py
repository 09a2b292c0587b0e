"""The lexical index: BM25 (Lucene variant, English Snowball stemming) over the chunks of one collection.

It is *derived* from the vector store's records and kept in step with them, with the same ids:

- A **main segment**: BM25 scores of every chunk, per term (CSC arrays), built from `store.iter_records()`.
- An **append-only delta**: one small segment file per write run (`put`: chunks written, re-read from the store;
  `remove`: ids deleted or replaced), applied at load on top of the main segment. Replaced or deleted main chunks
  become tombstones filtered at query time. Delta chunks are scored with the same BM25 formula and statistics that
  combine both parts (N and document frequencies of main + delta); main scores are rescaled per query term by
  idf(combined) / idf(main), so the IDF is consistent across parts. The main segment's average length is kept
  (an approximation while the delta is small). When the delta and tombstones outgrow `delta_fraction` of the main
  segment, the next write rebuilds the main segment from the store (amortised: a full build per ~10 % growth).
- Every state on disk is named by a **manifest** (generation stamp and record count of the store it matches, main
  segment, segment list); the `CURRENT` pointer names the manifest. Files are written and fsynced before the
  manifest, the manifest before `CURRENT` is atomically replaced. A crash at any point leaves the old complete
  state with a stale stamp, and a stale stamp (or a live count that disagrees with the manifest) means "rebuild
  from the store"; leftovers are swept by the next build.
- A delta is only appended when the writer held the store's writer lock and the index on disk matched the store's
  stamp from *before* the write run, or, on a Chroma server, when the store's change log leads from the stamp on
  disk to the store's stamp now (`store.changes_since`: the ids touched meanwhile are re-read, whoever wrote them).
  Anything else (another process wrote in dense mode to an embedded store, a truncated log, a crash) rebuilds in
  full.

What is indexed per chunk: its title (repeated `title_weight` times), its section path, and its text.
"""

from __future__ import annotations

import fnmatch
import functools
import json
import math
import os
import re
import shutil
import threading
import time
import uuid
from array import array
from collections import Counter, OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from rag_app.errors import RagError

#: Bumped when the on-disk layout or the tokenisation changes, so old indexes are rebuilt rather than misread.
FORMAT_VERSION = 2
_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)  # words and numbers; "max_tokens" → "max", "tokens"
#: Names in an index folder that belong to a state (or a crash's leftovers) and may be swept.
_SWEPT = ("index-", "tmp-", "main-", "seg-", "manifest-", ".CURRENT.", ".manifest-", ".seg-")


class RecordSource(Protocol):
    """What the index needs from a vector store (duck-typed, see `rag_app.components.store.VectorStore`)."""

    name: str

    def generation(self) -> str: ...

    def count(self) -> int: ...

    def iter_records(self, page_size: int = ..., include_documents: bool = ...) -> Iterable[tuple[str, dict, str | None]]: ...

    def get(self, ids: Sequence[str], include_documents: bool = ...) -> dict[str, Any]: ...

    def changes_since(self, since: str, until: str, max_ids: int) -> Any | None:
        """The ids touched between two generation stamps (`.touched`), or None if the store cannot say."""


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


def idf(df: np.ndarray | float, n_docs: int) -> np.ndarray | float:
    """Lucene's BM25 IDF, log(1 + (N - df + 0.5) / (df + 0.5)) (as bm25s' "lucene" method)."""
    return np.log1p((n_docs - df + 0.5) / (df + 0.5))


def term_weight(tf: np.ndarray, length: np.ndarray, avg_length: float, config: LexicalConfig) -> np.ndarray:
    """BM25's term-frequency part, tf / (k1 (1 - b + b dl / avgdl) + tf)."""
    return tf / (config.k1 * ((1 - config.b) + config.b * length / avg_length) + tf)


class _Sources:
    """Source paths per chunk, stored once each (codes into a name list): a glob matches names, not chunks."""

    def __init__(self, names: list[str], codes: np.ndarray):
        self.names = names
        self.codes = codes  # (N,) int32

    @classmethod
    def of(cls, sources: Iterable[str]) -> _Sources:
        table: dict[str, int] = {}
        codes = array("i", (table.setdefault(s, len(table)) for s in sources))
        return cls(list(table), np.frombuffer(codes, dtype=np.int32) if codes else np.zeros(0, np.int32))

    def matching(self, source_glob: str) -> np.ndarray:
        return np.array([i for i, s in enumerate(self.names) if fnmatch.fnmatch(s, source_glob)], dtype=np.int32)

    def mask(self, source_glob: str) -> np.ndarray:
        return np.isin(self.codes, self.matching(source_glob))


# -- the main segment ---------------------------------------------------------------------------------------------
class MainSegment:
    """An immutable BM25 index over chunk ids: per-term columns of precomputed scores (CSC: term → chunks)."""

    def __init__(self, ids: np.ndarray, sources: _Sources, vocab: dict[str, int], data: np.ndarray,
                 indices: np.ndarray, indptr: np.ndarray, avg_length: float, config: LexicalConfig,
                 stamp: dict[str, Any]):
        self.ids = ids  # (N,) bytes: chunk ids
        self.sources = sources
        self.vocab = vocab
        self.data, self.indices, self.indptr = data, indices, indptr  # (P,) float32, (P,) int32, (V+1,) int64
        self.avg_length = avg_length
        self.config = config
        self.stamp = stamp
        self._rows: tuple[np.ndarray, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def df(self, term_id: int) -> int:
        return int(self.indptr[term_id + 1] - self.indptr[term_id])

    def rows_of(self, ids: Iterable[str]) -> np.ndarray:
        """Row numbers of the ids held here (others are left out)."""
        if self._rows is None:
            order = np.argsort(self.ids, kind="stable")
            self._rows = (self.ids[order], order)
        sorted_ids, order = self._rows
        if not len(sorted_ids):
            return np.zeros(0, np.int64)
        width = sorted_ids.dtype.itemsize
        wanted = np.array([e for e in (i.encode() for i in ids) if len(e) <= width], dtype=sorted_ids.dtype)
        if not len(wanted):
            return np.zeros(0, np.int64)
        at = np.clip(np.searchsorted(sorted_ids, wanted), 0, len(sorted_ids) - 1)
        found = sorted_ids[at] == wanted
        return order[at[found]]

    @classmethod
    def build(cls, records: Iterable[tuple[str, dict, str | None]], config: LexicalConfig,
              stamp: dict[str, Any]) -> MainSegment:
        """Stream the records once: tokens → (term, chunk, tf) triples in compact arrays, then scores per term."""
        vocab: dict[str, int] = {}
        ids: list[bytes] = []
        sources: list[str] = []
        terms, rows, tfs, lengths = array("i"), array("i"), array("f"), array("f")
        for row, (record_id, metadata, text) in enumerate(records):
            metadata = metadata or {}
            ids.append(record_id.encode())
            sources.append(str(metadata.get("source", "")))
            tokens = tokenize(indexed_text(metadata, text, config.title_weight), config)
            lengths.append(len(tokens))
            counts = Counter(tokens)
            terms.extend(vocab.setdefault(t, len(vocab)) for t in counts)
            tfs.extend(counts.values())
            rows.extend([row] * len(counts))
        n_docs = len(ids)
        term = np.frombuffer(terms, np.int32) if terms else np.zeros(0, np.int32)
        row = np.frombuffer(rows, np.int32) if rows else np.zeros(0, np.int32)
        tf = np.frombuffer(tfs, np.float32) if tfs else np.zeros(0, np.float32)
        length = np.frombuffer(lengths, np.float32) if lengths else np.zeros(0, np.float32)
        avg_length = float(length.mean()) if n_docs and length.sum() else 1.0
        df = np.bincount(term, minlength=len(vocab))
        scores = (idf(df.astype(np.float64), n_docs)[term] * term_weight(tf, length[row], avg_length, config))
        order = np.argsort(term, kind="stable")  # by term, then by row (rows were appended in order)
        indptr = np.zeros(len(vocab) + 1, dtype=np.int64)
        np.cumsum(df, out=indptr[1:])
        return cls(np.array(ids, dtype="S") if ids else np.zeros(0, "S1"), _Sources.of(sources), vocab,
                   scores[order].astype(np.float32), row[order].astype(np.int32), indptr, avg_length, config, stamp)

    # -- persistence ----------------------------------------------------------------------------------------------
    def save_into(self, folder: Path) -> None:
        """Write the files into an empty folder; `stamp.json` last (it marks the folder complete)."""
        for name in ("data", "indices", "indptr", "ids", "source_codes"):
            array_ = self.sources.codes if name == "source_codes" else getattr(self, name)
            with open(folder / f"{name}.npy", "wb") as handle:
                np.save(handle, array_)
                handle.flush()
                os.fsync(handle.fileno())
        _write_json_durably(folder / "terms.json", {"vocab": self.vocab, "sources": self.sources.names,
                                                    "avg_length": self.avg_length})
        _write_json_durably(folder / "stamp.json", {**self.stamp, "config": asdict(self.config)})

    @classmethod
    def load_from(cls, folder: Path, mmap: bool = False) -> MainSegment:
        stamp = json.loads((folder / "stamp.json").read_text(encoding="utf-8"))
        config = LexicalConfig(**stamp.pop("config"))
        terms = json.loads((folder / "terms.json").read_text(encoding="utf-8"))
        mode = "r" if mmap else None
        arrays = {name: np.load(folder / f"{name}.npy", mmap_mode=mode, allow_pickle=False)
                  for name in ("data", "indices", "indptr", "ids", "source_codes")}
        return cls(arrays["ids"], _Sources(terms["sources"], arrays["source_codes"]), terms["vocab"], arrays["data"],
                   arrays["indices"], arrays["indptr"], float(terms["avg_length"]), config, stamp)


# -- the delta ----------------------------------------------------------------------------------------------------
@dataclass
class _DeltaDoc:
    source: str
    terms: dict[str, int]  # term -> tf
    length: int


@dataclass
class Delta:
    """Chunks written since the main segment was built, and the main rows deleted or replaced since."""

    docs: dict[str, _DeltaDoc] = field(default_factory=dict)
    removed: set[int] = field(default_factory=set)  # main rows

    def apply(self, segment: dict[str, Any], main: MainSegment) -> None:
        """One write run's segment: `remove` ids, then `put` [id, source, tokens] (a put replaces its id too)."""
        gone = list(segment.get("remove", ())) + [rid for rid, _, _ in segment.get("put", ())]
        for rid in gone:
            self.docs.pop(rid, None)
        self.removed.update(int(r) for r in main.rows_of(gone))
        for rid, source, tokens in segment.get("put", ()):
            self.docs[rid] = _DeltaDoc(source, dict(Counter(tokens)), len(tokens))


# -- main + delta: what readers search ----------------------------------------------------------------------------
class LexicalIndex:
    """The searchable view of the index: the main segment, minus tombstones, plus the delta's chunks.

    `stamp` is the store state it matches (`generation`, `count`); `ids` lists the live chunk ids.
    """

    def __init__(self, main: MainSegment, delta: Delta, stamp: dict[str, Any], segments: tuple[str, ...] = ()):
        self.main = main
        self.config = main.config
        self.stamp = stamp
        self.segments = segments
        self.delta = delta
        n_main = len(main)
        self._alive = np.ones(n_main, dtype=bool)
        if delta.removed:
            self._alive[np.fromiter(delta.removed, dtype=np.int64, count=len(delta.removed))] = False
        self._delta_ids = list(delta.docs)
        self._delta_sources = _Sources.of(d.source for d in delta.docs.values())
        # The delta as CSC arrays over its own term list: term → (delta row, tf).
        vocab: dict[str, int] = {}
        terms, rows, tfs = array("i"), array("i"), array("f")
        for row, doc in enumerate(delta.docs.values()):
            terms.extend(vocab.setdefault(t, len(vocab)) for t in doc.terms)
            tfs.extend(doc.terms.values())
            rows.extend([row] * len(doc.terms))
        term = np.frombuffer(terms, np.int32) if terms else np.zeros(0, np.int32)
        order = np.argsort(term, kind="stable")
        self._d_vocab = vocab
        self._d_rows = (np.frombuffer(rows, np.int32) if rows else np.zeros(0, np.int32))[order]
        self._d_tf = (np.frombuffer(tfs, np.float32) if tfs else np.zeros(0, np.float32))[order]
        self._d_indptr = np.zeros(len(vocab) + 1, dtype=np.int64)
        np.cumsum(np.bincount(term, minlength=len(vocab)), out=self._d_indptr[1:])
        self._d_length = np.array([d.length for d in delta.docs.values()], dtype=np.float32)
        # Combined statistics: live main chunks plus delta chunks.
        self.n_docs = int(self._alive.sum()) + len(self._delta_ids)
        self._masks: OrderedDict[str, np.ndarray] = OrderedDict()
        self._live_ids: list[str] | None = None

    def __len__(self) -> int:
        return self.n_docs

    @property
    def ids(self) -> list[str]:
        """The live chunk ids (main segment without tombstones, then the delta)."""
        if self._live_ids is None:
            main = [i.decode() for i in self.main.ids[self._alive]]
            self._live_ids = main + self._delta_ids
        return self._live_ids

    @property
    def stats(self) -> dict[str, int]:
        """Sizes: chunks in the main segment, in the delta, tombstones, delta segment files."""
        return {"main": len(self.main), "delta": len(self._delta_ids), "removed": len(self.delta.removed),
                "segments": len(self.segments)}

    def _id(self, position: int) -> str:
        n_main = len(self.main)
        return self.main.ids[position].decode() if position < n_main else self._delta_ids[position - n_main]

    def source_mask(self, source_glob: str) -> np.ndarray:
        """Boolean mask over main rows then delta rows of the chunks whose source matches the glob (cached)."""
        mask = self._masks.get(source_glob)
        if mask is None:
            mask = np.concatenate([self.main.sources.mask(source_glob), self._delta_sources.mask(source_glob)])
            self._masks[source_glob] = mask
            while len(self._masks) > 32:
                self._masks.popitem(last=False)
        return mask

    def matching_sources(self, source_glob: str) -> list[str]:
        names = set(self.main.sources.names) | set(self._delta_sources.names)
        return sorted(s for s in names if fnmatch.fnmatch(s, source_glob))

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every main row then every delta row for the query, float32; 0 where no query term occurs
        (and at tombstones)."""
        main, n_main = self.main, len(self.main)
        out = np.zeros(n_main + len(self._delta_ids), dtype=np.float64)
        has_delta = bool(self._delta_ids or self.delta.removed)
        for token in tokenize(query, self.config):
            m_id, d_id = main.vocab.get(token), self._d_vocab.get(token)
            df_main = main.df(m_id) if m_id is not None else 0
            weight = idf(self._document_frequency(m_id, d_id), self.n_docs) if has_delta else None
            if m_id is not None and df_main:
                span = slice(main.indptr[m_id], main.indptr[m_id + 1])
                column = np.asarray(main.data[span], dtype=np.float64)
                if weight is not None:  # rescale main's IDF to the combined one
                    column = column * (weight / idf(df_main, len(main)))
                out[:n_main] += np.bincount(main.indices[span], weights=column, minlength=n_main)
            if d_id is not None and self._d_indptr[d_id + 1] > self._d_indptr[d_id]:
                span = slice(self._d_indptr[d_id], self._d_indptr[d_id + 1])
                rows = self._d_rows[span]
                tfc = term_weight(self._d_tf[span], self._d_length[rows], main.avg_length if n_main else
                                  max(float(self._d_length.mean()), 1.0), self.config)
                out[n_main + rows] += weight * tfc  # a term's rows are distinct
        if self.delta.removed:
            out[:n_main][~self._alive] = 0.0
        return out.astype(np.float32)

    def query_weight(self, query: str) -> float:
        """The most BM25 score any chunk could get for the query: the sum of its tokens' IDF (each term's
        saturation part is below 1). A token the collection never holds counts at full IDF, so a chunk's score over
        this is the share of the query it matches, comparable across collections (`Hit.extra["lexical_share"]`)."""
        total = 0.0
        for token in tokenize(query, self.config):
            df = self._document_frequency(self.main.vocab.get(token), self._d_vocab.get(token))
            total += float(idf(df, max(self.n_docs, 1)))
        return total

    def _document_frequency(self, main_id: int | None, delta_id: int | None) -> int:
        """Live chunks holding a term: main's rows not removed since, plus the delta's (a chunk re-put into the
        delta is counted once, as `n_docs` counts it)."""
        df = 0
        if main_id is not None:
            df = self.main.df(main_id)
            if self.delta.removed and df:
                df = int(self._alive[self.main.indices[self.main.indptr[main_id]:self.main.indptr[main_id + 1]]].sum())
        if delta_id is not None:
            df += int(self._d_indptr[delta_id + 1] - self._d_indptr[delta_id])
        return df

    def search(self, query: str, k: int, source_glob: str | None = None) -> list[tuple[str, float]]:
        """Top-k (chunk id, BM25 score), best first; chunks sharing no term with the query are left out."""
        if k <= 0 or not self.n_docs:
            return []
        scores = self.scores(query)
        if source_glob:
            scores = np.where(self.source_mask(source_glob), scores, 0.0)
        candidates = np.flatnonzero(scores > 0)
        if len(candidates) > k:
            candidates = candidates[np.argpartition(-scores[candidates], k - 1)[:k]]
        order = candidates[np.argsort(-scores[candidates], kind="stable")]
        return [(self._id(int(i)), float(scores[i])) for i in order]


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
        delta_fraction: the delta (chunks plus tombstones) may grow to this share of the main segment (or to
            `delta_min`, if larger) before a write rebuilds the main segment.
        mmap: map the main segment's arrays from disk (shared page cache between processes) instead of reading them.
    """

    def __init__(self, root: Path, store: RecordSource, config: LexicalConfig = LexicalConfig(), check_s: float = 0.5,
                 delta_fraction: float = 0.1, mmap: bool = False, delta_min: int = 2000):
        self.folder = Path(root) / store.name
        self.store = store
        self.config = config
        self.check_s = check_s
        self.delta_fraction = delta_fraction
        self.delta_min = delta_min
        self.mmap = mmap
        self._index: LexicalIndex | None = None
        self._main: tuple[str, MainSegment] | None = None  # (folder name, segment): kept while manifests name it
        self._checked_at = -1e9
        self._seen_pointer: tuple | None = None
        self._lock = threading.RLock()
        #: What this process did: full builds of the main segment, delta segments written, states loaded from disk.
        self.counters = {"full_builds": 0, "delta_writes": 0, "loads": 0, "catch_ups": 0, "records_read": 0}

    # What the index must have been built from to be current.
    def wanted_stamp(self) -> dict[str, Any]:
        return {"format": FORMAT_VERSION, "generation": self.store.generation(), "count": self.store.count(),
                "config": asdict(self.config)}

    @staticmethod
    def _matches(stamp: dict[str, Any] | None, wanted: dict[str, Any]) -> bool:
        return stamp is not None and all(stamp.get(key) == value for key, value in wanted.items())

    def _stamp_of(self, index: LexicalIndex | None) -> dict[str, Any] | None:
        return None if index is None else {**index.stamp, "config": asdict(index.config)}

    def current(self) -> LexicalIndex:
        """The up-to-date index: checked against the store at most every `check_s`, reloaded or rebuilt if stale.

        A new state saved by any writer (its `CURRENT` pointer replaced) is noticed at once, without waiting.
        """
        with self._lock:
            now = time.monotonic()
            pointer = self._pointer()
            if self._index is not None and now - self._checked_at < self.check_s and pointer == self._seen_pointer:
                return self._index
            wanted = self.wanted_stamp()
            if not self._matches(self._stamp_of(self._index), wanted):
                self._index = self._load_or_build(wanted)
                pointer = self._pointer()
            self._seen_pointer = pointer
            self._checked_at = time.monotonic()
            return self._index

    def refresh(self) -> LexicalIndex:
        """Bring the index up to date now, loading it (or rebuilding it in full when stale)."""
        with self._lock:
            self._index = self._load_or_build(self.wanted_stamp())
            self._checked_at = time.monotonic()
            self._seen_pointer = self._pointer()
            return self._index

    def ensure(self) -> None:
        """Make sure the state on disk matches the store, without loading it when it already does (writers)."""
        with self._lock:
            manifest = self._read_manifest()
            if not self._matches(manifest, self.wanted_stamp()):
                self.refresh()

    def apply_write(self, before: str, written: Iterable[str] | None, removed: Iterable[str] = ()) -> None:
        """After a write run that held the writer lock: append its changes as a delta segment.

        Args:
            before: the store's generation stamp before the run changed anything.
            written: ids upserted or whose metadata changed (re-read from the store); None if not tracked (too
                many): the index is rebuilt in full.
            removed: ids deleted.

        Falls back to a full rebuild when the state on disk is not the one from before the run, or when the delta
        would outgrow `delta_fraction` of the main segment.
        """
        from filelock import FileLock

        with self._lock:
            self.folder.mkdir(parents=True, exist_ok=True)
            with FileLock(str(self.folder / "build.lock")):
                manifest = self._read_manifest()
                wanted = self.wanted_stamp()
                if written is None or manifest is None or manifest.get("generation") != before or not self._matches(
                        manifest, {k: v for k, v in wanted.items() if k not in ("generation", "count")}):
                    self._full_refresh(wanted)
                    return
                written = sorted(set(written))
                removed = sorted(set(removed) - set(written))
                limit = max(self.delta_min, int(self.delta_fraction * manifest["main_count"]))
                if manifest["delta_size"] + len(written) + len(removed) > limit:
                    self._full_refresh(wanted)
                    return
                put, present = self._reread(written)
                removed += [rid for rid in written if rid not in present]  # written, then deleted in the same run
                stamp = {k: v for k, v in wanted.items() if k != "config"}
                self._append_segment(manifest, stamp, {"put": put, "remove": removed})
                # Loaded when next searched: only the new segment is applied (the main segment is kept).
                self._checked_at, self._seen_pointer = -1e9, None

    def _reread(self, ids: Sequence[str]) -> tuple[list[list], set[str]]:
        """([id, source, tokens] of the ids the store holds, the set of those ids)."""
        put, present = [], set()
        for start in range(0, len(ids), 5000):
            got = self.store.get(list(ids[start:start + 5000]), include_documents=True)
            docs = got.get("documents") or [None] * len(got["ids"])
            for rid, meta, text in zip(got["ids"], got["metadatas"], docs):
                meta = meta or {}
                present.add(rid)
                put.append([rid, str(meta.get("source", "")),
                            tokenize(indexed_text(meta, text, self.config.title_weight), self.config)])
        return put, present

    def _append_segment(self, manifest: dict[str, Any], stamp: dict[str, Any], segment: dict[str, list]) -> None:
        """Write one delta segment and publish the manifest naming it, stamped `stamp` (caller holds build.lock)."""
        name = f"seg-{uuid.uuid4().hex[:12]}.json"
        _write_json_durably(self.folder / name, segment)
        self._publish({**manifest, **stamp, "segments": [*manifest["segments"], name],
                       "delta_size": manifest["delta_size"] + len(segment["put"]) + len(segment["remove"])})
        self.counters["delta_writes"] += 1

    def _catch_up(self, wanted: dict[str, Any]) -> LexicalIndex | None:
        """Bring the state on disk to the store's stamp by the store's change log, as one delta segment: the ids
        touched since are re-read, so the cost follows the change, not the collection. None when the log cannot
        connect the two stamps, the delta would outgrow its limit, or the result disagrees with the store (the
        caller rebuilds). The caller holds build.lock."""
        changes_since = getattr(self.store, "changes_since", None)
        manifest = self._read_manifest()
        if changes_since is None or manifest is None or not self._matches(
                manifest, {k: v for k, v in wanted.items() if k not in ("generation", "count")}):
            return None
        room = max(self.delta_min, int(self.delta_fraction * manifest["main_count"])) - manifest["delta_size"]
        changes = changes_since(manifest["generation"], wanted["generation"], room) if room > 0 else None
        if changes is None:
            return None
        touched = sorted(changes.touched)
        put, present = self._reread(touched)
        segment = {"put": put, "remove": [rid for rid in touched if rid not in present]}
        base = self._load_current()
        if base is None:
            return None
        delta = Delta(dict(base.delta.docs), set(base.delta.removed))
        delta.apply(segment, base.main)
        index = LexicalIndex(base.main, delta, {}, base.segments)
        stamp = {"format": FORMAT_VERSION, "generation": wanted["generation"], "count": len(index)}
        if len(index) != wanted["count"] and self.store.generation() == wanted["generation"] and (
                self.store.count() != len(index)):
            # The store did not move, yet the count disagrees. A run still writing under this stamp does that
            # (caught up again on the next check); anything else means the log missed a change: rebuild.
            if wanted["generation"] not in changes.open_runs:
                return None
        if touched:
            self._append_segment(manifest, stamp, segment)
        else:  # runs that changed nothing (e.g. a writer killed before its first call): only the stamp moves
            self._publish({**manifest, **stamp})
        self.counters["catch_ups"] += 1
        self.counters["records_read"] += len(touched)
        return self._load_current()

    # -- on disk ----------------------------------------------------------------------------------------------------
    def _pointer(self) -> tuple | None:
        """Identity of the `CURRENT` pointer file (replaced atomically by every save): a cheap stat."""
        try:
            info = os.stat(self.folder / "CURRENT")
        except OSError:
            return None
        return info.st_ino, info.st_mtime_ns, info.st_size

    def _read_manifest(self) -> dict[str, Any] | None:
        for _ in range(3):  # a writer may replace CURRENT and sweep the old manifest between our two reads
            try:
                name = (self.folder / "CURRENT").read_text(encoding="utf-8").strip()
                if not name.startswith("manifest-"):
                    return None  # an older format's pointer
                return json.loads((self.folder / name).read_text(encoding="utf-8"))
            except FileNotFoundError:
                continue
            except (OSError, ValueError):
                return None
        return None

    def _load_current(self) -> LexicalIndex | None:
        manifest = self._read_manifest()
        if manifest is None:
            return None
        try:
            if self._main is None or self._main[0] != manifest["main"]:
                self._main = (manifest["main"], MainSegment.load_from(self.folder / manifest["main"], self.mmap))
            main = self._main[1]
            delta, segments = Delta(), tuple(manifest["segments"])
            old = self._index
            if old is not None and old.main is main and segments[:len(old.segments)] == old.segments:
                delta = Delta(dict(old.delta.docs), set(old.delta.removed))  # apply only the new segments
                todo = segments[len(old.segments):]
            else:
                todo = segments
            for name in todo:
                delta.apply(json.loads((self.folder / name).read_text(encoding="utf-8")), main)
            index = LexicalIndex(main, delta, {k: manifest[k] for k in ("format", "generation", "count")}, segments)
        except (OSError, ValueError, KeyError, TypeError):
            return None  # missing, half-deleted or from another format: rebuilt by the caller
        if len(index) != manifest["count"]:
            return None  # the parts disagree with the store they claim to match: rebuild
        self.counters["loads"] += 1
        return index

    def _load_or_build(self, wanted: dict[str, Any]) -> LexicalIndex:
        on_disk = self._load_current()
        if self._matches(self._stamp_of(on_disk), wanted):
            return on_disk
        from filelock import FileLock

        self.folder.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.folder / "build.lock")):
            on_disk = self._load_current()  # another process may have built it while we waited
            if self._matches(self._stamp_of(on_disk), wanted):
                return on_disk
            return self._catch_up(wanted) or self._build_and_save(wanted)

    def _full_refresh(self, wanted: dict[str, Any]) -> None:
        """Rebuild the main segment (caller holds build.lock)."""
        self._index = self._build_and_save(wanted)
        self._checked_at = time.monotonic()
        self._seen_pointer = self._pointer()

    def _build_and_save(self, wanted: dict[str, Any]) -> LexicalIndex:
        stamp = {k: v for k, v in wanted.items() if k != "config"}
        main = MainSegment.build(self.store.iter_records(include_documents=True), self.config, stamp)
        self.counters["full_builds"] += 1
        self.counters["records_read"] += len(main)
        index = LexicalIndex(main, Delta(), stamp)
        if not self._matches(self._stamp_of(index), self.wanted_stamp()) or len(main) != stamp["count"]:
            # A write run moved the store while we read it: keep serving this snapshot, but don't persist it.
            return index
        tmp = self.folder / f"tmp-{uuid.uuid4().hex[:12]}"
        tmp.mkdir()
        main.save_into(tmp)
        final = f"main-{uuid.uuid4().hex[:12]}"
        os.rename(tmp, self.folder / final)
        self._main = (final, main)
        self._publish({**stamp, "config": asdict(self.config), "main": final, "main_count": len(main),
                       "segments": [], "delta_size": 0})
        current = (self.folder / "CURRENT").read_text(encoding="utf-8").strip()
        for old in self.folder.iterdir():  # older states and a crash's leftovers
            if old.name in (final, current) or not old.name.startswith(_SWEPT):
                continue
            if old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.unlink(missing_ok=True)
        return index

    def _publish(self, manifest: dict[str, Any]) -> None:
        """Write a manifest and point `CURRENT` at it (atomic replace); sweep the manifests before it."""
        name = f"manifest-{uuid.uuid4().hex[:12]}.json"
        _write_json_durably(self.folder / name, manifest)
        tmp_pointer = self.folder / f".CURRENT.{uuid.uuid4().hex[:8]}"
        with open(tmp_pointer, "w", encoding="utf-8") as handle:
            handle.write(name)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_pointer, self.folder / "CURRENT")
        for old in self.folder.glob("manifest-*.json"):
            if old.name != name:
                old.unlink(missing_ok=True)

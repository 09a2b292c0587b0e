"""BM25 itself: tokenising, the immutable main segment (precomputed per-term scores, CSC), the append-only delta,
and `LexicalIndex`, the searchable view of main minus tombstones plus delta (the scoring is explained in the
package docstring). How these are kept on disk and published is `published.py`'s business."""

from __future__ import annotations

import fnmatch
import functools
import io
import json
import os
import re
from array import array
from collections import Counter, OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rag_app.components.lexical import durable
from rag_app.components.lexical.arrays import load_array
from rag_app.errors import RagError

FORMAT_VERSION = 2
_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)  # words and numbers; "max_tokens" → "max", "tokens"



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


class _Records:
    """Each chunk's text and metadata as the store held them when the segment was built, so a query reads the texts
    of its hits here instead of from the store: JSON `[text, metadata]` per row in one blob (`records.bin`, mapped),
    `offsets[row]:offsets[row + 1]` its bytes (`record_offsets.npy`)."""

    def __init__(self, blob: np.ndarray, offsets: np.ndarray, path: Path | None = None):
        self.blob = blob  # (B,) uint8
        self.offsets = offsets  # (N + 1,) int64
        self.path = path  # the file `blob` maps, if any

    @staticmethod
    def encode(text: str | None, metadata: dict[str, Any]) -> bytes:
        """The record's bytes; none for metadata JSON cannot hold as it is (e.g. a server's sparse vector): such a
        record is read from the store."""
        try:
            return json.dumps([text or "", metadata], ensure_ascii=False, separators=(",", ":")).encode()
        except (TypeError, ValueError):
            return b""

    @staticmethod
    def map(path: Path) -> np.ndarray:
        return np.asarray(np.memmap(path, dtype=np.uint8, mode="r")) if path.stat().st_size else np.zeros(0, np.uint8)

    def get(self, row: int) -> tuple[str, dict[str, Any]] | None:
        start, end = self.offsets[row], self.offsets[row + 1]
        if start == end:
            return None  # not kept (`encode`)
        text, metadata = json.loads(self.blob[start:end].tobytes())
        return text, metadata


# -- the main segment ---------------------------------------------------------------------------------------------
class MainSegment:
    """An immutable BM25 index over chunk ids: per-term columns of precomputed scores (CSC: term → chunks)."""

    def __init__(self, ids: np.ndarray, sources: _Sources, vocab: dict[str, int], data: np.ndarray,
                 indices: np.ndarray, indptr: np.ndarray, avg_length: float, config: LexicalConfig,
                 stamp: dict[str, Any], records: _Records | None = None):
        self.ids = ids  # (N,) bytes: chunk ids
        self.sources = sources
        self.vocab = vocab
        self.data, self.indices, self.indptr = data, indices, indptr  # (P,) float32, (P,) int32, (V+1,) int64
        self.avg_length = avg_length
        self.config = config
        self.stamp = stamp
        self.records = records  # None: built before segments kept them (texts are read from the store)
        self._rows: tuple[np.ndarray, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def df(self, term_id: int) -> int:
        return int(self.indptr[term_id + 1] - self.indptr[term_id])

    def rows_of(self, ids: Iterable[str]) -> np.ndarray:
        """Row numbers of the ids held here (others are left out)."""
        rows = self.positions(ids)
        return rows[rows >= 0]

    def positions(self, ids: Iterable[str]) -> np.ndarray:
        """The row number of each id, -1 for ids not held here."""
        if self._rows is None:
            order = np.argsort(self.ids, kind="stable")
            self._rows = (self.ids[order], order)
        sorted_ids, order = self._rows
        encoded = [i.encode() for i in ids]
        rows = np.full(len(encoded), -1, dtype=np.int64)
        if not len(sorted_ids) or not encoded:
            return rows
        width = sorted_ids.dtype.itemsize
        fits = np.array([len(e) <= width for e in encoded], dtype=bool)
        wanted = np.array([e for e, ok in zip(encoded, fits) if ok], dtype=sorted_ids.dtype)
        if not len(wanted):
            return rows
        at = np.clip(np.searchsorted(sorted_ids, wanted), 0, len(sorted_ids) - 1)
        found = sorted_ids[at] == wanted
        rows[np.flatnonzero(fits)[found]] = order[at[found]]
        return rows

    @classmethod
    def build(cls, records: Iterable[tuple[str, dict, str | None]], config: LexicalConfig,
              stamp: dict[str, Any], spool: Path | None = None) -> MainSegment:
        """Stream the records once: tokens → (term, chunk, tf) triples in compact arrays, then scores per term.

        Each record's text and metadata are kept too (`_Records`): written to the file `spool` as they stream by
        (then mapped; `save_into` the folder holding it keeps the file), or held in memory when no spool is given.
        """
        vocab: dict[str, int] = {}
        ids: list[bytes] = []
        sources: list[str] = []
        terms, rows, tfs, lengths = array("i"), array("i"), array("f"), array("f")
        offsets = array("q", [0])
        with open(spool, "wb") if spool is not None else io.BytesIO() as sink:
            for row, (record_id, metadata, text) in enumerate(records):
                metadata = metadata or {}
                offsets.append(offsets[-1] + sink.write(_Records.encode(text, metadata)))
                ids.append(record_id.encode())
                sources.append(str(metadata.get("source", "")))
                tokens = tokenize(indexed_text(metadata, text, config.title_weight), config)
                lengths.append(len(tokens))
                counts = Counter(tokens)
                terms.extend(vocab.setdefault(t, len(vocab)) for t in counts)
                tfs.extend(counts.values())
                rows.extend([row] * len(counts))
            blob = np.frombuffer(sink.getvalue(), np.uint8) if spool is None else None
        kept = _Records(_Records.map(spool) if spool is not None else blob, np.frombuffer(offsets, np.int64), spool)
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
                   scores[order].astype(np.float32), row[order].astype(np.int32), indptr, avg_length, config, stamp,
                   kept)

    # -- persistence ----------------------------------------------------------------------------------------------
    def save_into(self, folder: Path) -> None:
        """Write the files into an empty folder (but for the records' spool, if it lies there); `stamp.json` last (it
        marks the folder complete)."""
        arrays = {name: getattr(self, name) for name in ("data", "indices", "indptr", "ids")}
        arrays["source_codes"] = self.sources.codes
        if self.records is not None:
            arrays["record_offsets"] = self.records.offsets
            target = folder / "records.bin"
            if self.records.path is None or Path(self.records.path).resolve() != target.resolve():
                target.write_bytes(self.records.blob.tobytes())
            with open(target, "rb") as handle:
                os.fsync(handle.fileno())
        for name, array_ in arrays.items():
            with open(folder / f"{name}.npy", "wb") as handle:
                np.save(handle, array_)
                handle.flush()
                os.fsync(handle.fileno())
        durable.write_json(folder / "terms.json", {"vocab": self.vocab, "sources": self.sources.names,
                                                    "avg_length": self.avg_length})
        durable.write_json(folder / "stamp.json", {**self.stamp, "config": asdict(self.config)})

    @classmethod
    def load_from(cls, folder: Path, mmap: bool = False) -> MainSegment:
        stamp = json.loads((folder / "stamp.json").read_text(encoding="utf-8"))
        config = LexicalConfig(**stamp.pop("config"))
        terms = json.loads((folder / "terms.json").read_text(encoding="utf-8"))
        # Mapped arrays are served as plain ndarray views of the map (np.memmap's slicing costs ~µs per call, and a
        # query slices once per term and per hit).
        arrays = {name: load_array(folder / f"{name}.npy", mmap)
                  for name in ("data", "indices", "indptr", "ids", "source_codes")}
        records = None
        if (folder / "record_offsets.npy").exists():  # (segments from before records were kept have none)
            # Always mapped: a query reads only its hits' few records.
            offsets = load_array(folder / "record_offsets.npy", mmap)
            records = _Records(_Records.map(folder / "records.bin"), offsets, folder / "records.bin")
        return cls(arrays["ids"], _Sources(terms["sources"], arrays["source_codes"]), terms["vocab"], arrays["data"],
                   arrays["indices"], arrays["indptr"], float(terms["avg_length"]), config, stamp, records)


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
        # A query's terms as this (immutable) index sees them, asked for twice per retrieve (`scores`,
        # `query_weight`): the last few queries' (emptied when full; dict reads and writes are atomic).
        self._term_cache: dict[str, tuple[tuple[int | None, int | None, int], ...]] = {}

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

    def records(self, ids: Sequence[str]) -> dict[str, tuple[str, dict[str, Any]]]:
        """(text, metadata) of those of `ids` that are live chunks of the main segment, as the store held them at
        this index's stamp; others are left out (delta chunks, ids not here, a segment built before records were
        kept): read them from the store."""
        kept = self.main.records
        if kept is None or not ids:
            return {}
        found = {}
        for rid, row in zip(ids, self.main.positions(ids).tolist()):
            if row >= 0 and self._alive[row] and (record := kept.get(row)) is not None:
                found[rid] = record
        return found

    def _terms(self, query: str) -> tuple[tuple[int | None, int | None, int], ...]:
        """(main term id, delta term id, live document frequency) of each query token, in order."""
        terms = self._term_cache.get(query)
        if terms is None:
            main_vocab, delta_vocab = self.main.vocab, self._d_vocab
            terms = tuple((m_id, d_id, self._document_frequency(m_id, d_id)) for m_id, d_id in
                          ((main_vocab.get(token), delta_vocab.get(token)) for token in tokenize(query, self.config)))
            if len(self._term_cache) >= 64:
                self._term_cache.clear()
            self._term_cache[query] = terms
        return terms

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every main row then every delta row for the query, float32; 0 where no query term occurs
        (and at tombstones)."""
        main, n_main = self.main, len(self.main)
        out = np.zeros(n_main + len(self._delta_ids), dtype=np.float64)
        has_delta = bool(self._delta_ids or self.delta.removed)
        rows, columns = [], []  # main's part: every term's rows and scores, summed by one bincount (in term order)
        for m_id, d_id, df in self._terms(query):
            df_main = main.df(m_id) if m_id is not None else 0
            weight = idf(df, self.n_docs) if has_delta else None
            if m_id is not None and df_main:
                span = slice(main.indptr[m_id], main.indptr[m_id + 1])
                column = np.asarray(main.data[span], dtype=np.float64)
                if weight is not None:  # rescale main's IDF to the combined one
                    column = column * (weight / idf(df_main, len(main)))
                rows.append(main.indices[span])
                columns.append(column)
            if d_id is not None and self._d_indptr[d_id + 1] > self._d_indptr[d_id]:
                span = slice(self._d_indptr[d_id], self._d_indptr[d_id + 1])
                d_rows = self._d_rows[span]
                tfc = term_weight(self._d_tf[span], self._d_length[d_rows], main.avg_length if n_main else
                                  max(float(self._d_length.mean()), 1.0), self.config)
                out[n_main + d_rows] += weight * tfc  # a term's rows are distinct
        if rows:
            out[:n_main] = np.bincount(np.concatenate(rows), weights=np.concatenate(columns), minlength=n_main)
        if self.delta.removed:
            out[:n_main][~self._alive] = 0.0
        return out.astype(np.float32)

    def query_weight(self, query: str) -> float:
        """The most BM25 score any chunk could get for the query: the sum of its tokens' IDF (each term's
        saturation part is below 1). A token the collection never holds counts at full IDF, so a chunk's score over
        this is the share of the query it matches, comparable across collections (`Hit.extra["lexical_share"]`)."""
        total = 0.0
        for _, _, df in self._terms(query):
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
        n_main = len(self.main)
        main_ids = iter(self.main.ids[order[order < n_main]].tolist())  # bytes, in order
        delta_ids = self._delta_ids
        ids = [next(main_ids).decode() if i < n_main else delta_ids[i - n_main] for i in order.tolist()]
        return list(zip(ids, scores[order].tolist()))

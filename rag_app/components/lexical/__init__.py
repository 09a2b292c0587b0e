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

What is indexed per chunk: its title (repeated `title_weight` times), its section path, and its text. The main
segment also keeps each chunk's text and metadata as read (`records.bin`, mapped; `LexicalIndex.records`), so a
retrieve takes its hits' texts from there, at the index's stamp, instead of asking the store; delta chunks and
segments built before records were kept are read from the store.

Modules: `bm25.py` (tokenising, segments, scoring), `published.py` (the state on disk and how it follows the
store), `durable.py` (crash-safe file writes).
"""

from rag_app.components.lexical.bm25 import (
    FORMAT_VERSION,
    Delta,
    LexicalConfig,
    LexicalIndex,
    MainSegment,
    idf,
    indexed_text,
    term_weight,
    tokenize,
)
from rag_app.components.lexical.published import DerivedLexicalIndex, RecordSource

__all__ = ["FORMAT_VERSION", "Delta", "DerivedLexicalIndex", "LexicalConfig", "LexicalIndex", "MainSegment",
           "RecordSource", "idf", "indexed_text", "term_weight", "tokenize"]

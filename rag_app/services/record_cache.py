"""Chunk texts and metadata the retriever has read, kept for one generation of the collection.

A hybrid query reads the texts of its few best chunks last (`Retriever._hydrate`): from the lexical index's main
segment where it keeps them, else from the store, where a `get` is the largest single cost of a retrieve (about 40 %
at 10k chunks); this cache keeps those store reads (chunks in the delta, segments from before records were kept),
and the chunks asked about repeat. Entries are valid only for the generation stamp they were read at (the lexical
index's, checked against the store at most every `retrieve.lexical_check_s`, and at once after a write in this
process), so a write anywhere empties the cache no later than it reaches lexical search.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any


class RecordCache:
    """At most `size` records (id → (text, metadata)), least recently used out first, for one generation stamp."""

    def __init__(self, size: int = 4096):
        self.size = size
        self._records: OrderedDict[str, tuple[str, dict[str, Any]]] = OrderedDict()
        self._stamp: str | None = None
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def take(self, stamp: str, ids: list[str]) -> dict[str, tuple[str, dict[str, Any]]]:
        """The cached records among `ids` read at `stamp` (a new stamp empties the cache first)."""
        with self._lock:
            if stamp != self._stamp:
                self._records.clear()
                self._stamp = stamp
            found = {}
            for rid in ids:
                record = self._records.get(rid)
                if record is not None:
                    self._records.move_to_end(rid)
                    found[rid] = (record[0], dict(record[1]))  # callers may change a hit's metadata
            self.hits += len(found)
            self.misses += len(ids) - len(found)
            return found

    def put(self, stamp: str, records: dict[str, tuple[str, dict[str, Any]]]) -> None:
        """Keep records read at `stamp` (ignored if the cache has moved on to another stamp meanwhile)."""
        with self._lock:
            if stamp != self._stamp or self.size <= 0:
                return
            for rid, (text, metadata) in records.items():
                self._records[rid] = (text, dict(metadata))
                self._records.move_to_end(rid)
            while len(self._records) > self.size:
                self._records.popitem(last=False)

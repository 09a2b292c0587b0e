"""The unit catalog: what the store holds per unit, in one small file, so a re-ingest need not read every record.

Deciding that a file is unchanged takes its stored chunks' hashes, chunking signatures and count. Reading those
from Chroma means reading every record's metadata: ~1.3 s per 10k chunks, the bulk of re-ingesting an unchanged
archive. The catalog keeps the same summary per unit (file path or document source) in
`<home>/catalog/<collection>.json`, stamped with the store's generation stamp at the end of the ingest run that
wrote it.

Why it cannot go out of step with the store: it is used only when its stamp equals the store's generation read
under the writer lock, and every change to the collection, by any writer, moves that stamp before it starts (so a
run killed half-way, or another tool's write, leaves the catalog stale and the next run reads the records
instead, then writes a fresh catalog). It is written only by an ingest run that ended normally, inside the writer
lock, and replaced atomically. A Chroma server has no writer lock, so there it is not used at all.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

FORMAT = 1


@dataclass
class UnitState:
    """The stored state of one unit: its chunks' file hashes, chunking signatures and origins, and their count.

    `ids` are the stored record ids; a state read from the catalog has them as None until they are needed (a
    changed or deleted unit), when they are looked up by the unit's `path`.
    """

    hashes: Counter = field(default_factory=Counter)
    chunkings: set[str] = field(default_factory=set)
    origins: set[str] = field(default_factory=set)
    n_chunks: int = -1
    count: int = 0
    ids: set[str] | None = field(default_factory=set)

    def is_complete(self, file_hash: str, chunking: str) -> bool:
        """True if the store holds exactly the chunks of this hash and chunking, all of them."""
        return (set(self.hashes) == {file_hash} and self.hashes[file_hash] == self.n_chunks == self.count
                and self.chunkings == {chunking})

    def add_record(self, record_id: str, meta: dict) -> None:
        assert self.ids is not None
        self.ids.add(record_id)
        self.count = len(self.ids)
        self.hashes[meta.get("file_hash", "")] += 1
        self.chunkings.add(str(meta.get("chunking", "")))
        self.origins.add(str(meta.get("origin", "")))
        self.n_chunks = int(meta.get("n_chunks", -1))

    @classmethod
    def written(cls, file_hash: str, chunking: str, origin: str, n_chunks: int, count: int) -> UnitState:
        """The state a unit has once a run stored all its `count` records (one per chunk)."""
        return cls(Counter({file_hash: count}), {chunking}, {origin}, n_chunks, count, None)

    def to_row(self) -> list:
        return [dict(self.hashes), sorted(self.chunkings), sorted(self.origins), self.n_chunks, self.count]

    @classmethod
    def from_row(cls, row: list) -> UnitState:
        hashes, chunkings, origins, n_chunks, count = row
        return cls(Counter(hashes), set(chunkings), set(origins), int(n_chunks), int(count), None)


class UnitCatalog:
    """One collection's catalog file (see the module docstring)."""

    def __init__(self, folder: Path, collection: str):
        self.path = Path(folder) / f"{collection}.json"

    def load(self, stamp: str) -> dict[str, UnitState] | None:
        """The catalog's states if it was written at `stamp` (the store's current generation), else None."""
        if not stamp:
            return None
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None  # missing or torn: the caller reads the records
        if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("stamp") != stamp:
            return None
        try:
            return {key: UnitState.from_row(row) for key, row in data["units"].items()}
        except (KeyError, TypeError, ValueError):
            return None

    def save(self, stamp: str, states: dict[str, UnitState]) -> None:
        """Write the catalog for `stamp` atomically (temp file, fsync, rename)."""
        if not stamp:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"format": FORMAT, "stamp": stamp,
                   "units": {key: state.to_row() for key, state in states.items() if state.count > 0}}
        temp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        with open(temp, "w", encoding="utf-8") as handle:
            json.dump(payload, handle, separators=(",", ":"))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, self.path)

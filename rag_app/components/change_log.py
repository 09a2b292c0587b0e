"""The change log of a collection on a Chroma server: which ids each write run touched, kept in the server itself.

Every process that reads the collection (a `rag serve` worker on another machine included) can then bring an index
derived from it up to date by re-reading only the ids touched since the state it holds, instead of the whole
collection. The log is a companion collection (`<name>.rag-changes`, marked by its metadata and hidden from
listings) with three kinds of entries per write run, each added *before* what it announces happens:

- `open`: the run's id (the generation stamp it sets first) and `before`, the stamp it read before changing
  anything;
- `ids`: one per upsert/update/delete call, the ids it is about to touch (the document holds them as JSON);
- `close`: the run's `final` stamp, set last.

A reader holding the state of stamp S follows runs from S: a run is reachable when its `before` is S or the id or
final stamp of a run already reached (so writers that overlapped on the server are followed too). When the stamp
the collection shows now is among the reached ones, re-reading every id the reached runs touched (present: its
current text; absent: deleted) makes the reader's index equal to the store, whatever the order the runs wrote in. A
run cut short by a crash has no `close` but its ids are there. A chain that does not reach the current stamp (a
truncated log, a reader too far behind, a log from before this feature) yields None: the caller rebuilds.
Entries older than the retention are dropped by writers, so readers further behind than that rebuild.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

#: Metadata key marking a change-log collection (and naming the collection it logs); such collections are hidden.
LOG_OF_KEY = "rag:change-log-of"
LOG_SUFFIX = ".rag-changes"
#: At most this many runs are followed in one catch-up; a reader further behind rebuilds.
MAX_RUNS = 2000


@dataclass
class ChangeSet:
    """The ids touched between two stamps: re-read each (present: current text; absent: deleted)."""

    touched: set[str] = field(default_factory=set)
    open_runs: set[str] = field(default_factory=set)  # runs followed that have not closed (still writing, or died)


class ChangeLog:
    """The change log of one collection (see the module docstring).

    Args:
        client: the Chroma client of the store.
        name: the logged collection's name.
        errors: wraps each server call (turns a dead server into a `StoreUnavailableError` naming its URL).
        retention_s: entries older than this are dropped when a run closes.
    """

    def __init__(self, client, name: str, errors: Callable[[], AbstractContextManager], retention_s: float):
        self.name = name
        self._errors = errors
        self.retention_s = retention_s
        with errors():
            self._log = client.get_or_create_collection(name + LOG_SUFFIX, metadata={LOG_OF_KEY: name},
                                                        embedding_function=None)

    # -- the writer's side -------------------------------------------------------------------------------------
    def open_run(self, run: str, before: str) -> None:
        self._add(f"{run}.open", {"kind": "open", "run": run, "before": before})

    def record(self, run: str, seq: int, ids: Sequence[str]) -> None:
        """Announce the ids one call of run `run` is about to write or delete (before it does)."""
        self._add(f"{run}.{seq:08d}", {"kind": "ids", "run": run}, json.dumps(list(ids)))

    def close_run(self, run: str, final: str) -> None:
        self._add(f"{run}.close", {"kind": "close", "run": run, "final": final})
        cutoff = time.time() - self.retention_s
        with self._errors():
            self._log.delete(where={"t": {"$lt": cutoff}})

    def _add(self, entry_id: str, metadata: dict, document: str = "") -> None:
        with self._errors():
            self._log.upsert(ids=[entry_id], embeddings=[[0.0]], documents=[document],
                             metadatas=[{**metadata, "t": time.time()}])

    # -- the reader's side -------------------------------------------------------------------------------------
    def changes(self, since: str, until: str, max_ids: int) -> ChangeSet | None:
        """The ids touched by the runs that lead from stamp `since` to stamp `until`; None when the log does not
        connect them or more than `max_ids` ids (or `MAX_RUNS` runs) were touched (then rebuild)."""
        runs: list[str] = []
        closed: set[str] = set()
        reached = {since}
        # `since` may be a run that was still open when the reader caught up: its ids are read again.
        new_runs = [since] if self._get({"$and": [{"kind": "open"}, {"run": since}]}, documents=False)["ids"] else []
        frontier = [since]
        while True:
            if new_runs:  # each run's id is a stamp, and so is its final stamp once it closed: both lead on
                runs += new_runs
                closes = self._get({"$and": [{"kind": "close"}, {"run": {"$in": new_runs}}]}, documents=False)
                finals = {meta["run"]: meta["final"] for meta in closes["metadatas"]}
                closed.update(finals)
                nodes = [*new_runs, *finals.values()]
                frontier += [node for node in nodes if node not in reached]
                reached.update(nodes)
            if len(runs) > MAX_RUNS:
                return None
            if not frontier:
                break
            found = self._get({"$and": [{"kind": "open"}, {"before": {"$in": frontier}}]}, documents=False)
            new_runs = sorted({meta["run"] for meta in found["metadatas"]} - set(runs))
            frontier = []
        if until not in reached:
            return None
        changes = ChangeSet(open_runs=set(runs) - closed)
        for start in range(0, len(runs), 100):
            entries = self._get({"$and": [{"kind": "ids"}, {"run": {"$in": runs[start:start + 100]}}]},
                                documents=True)
            for document in entries["documents"]:
                changes.touched.update(json.loads(document or "[]"))
                if len(changes.touched) > max_ids:
                    return None
        return changes

    def _get(self, where: dict, documents: bool) -> dict:
        with self._errors():
            return self._log.get(where=where, include=["metadatas", "documents"] if documents else ["metadatas"])

"""The published state of a collection's lexical index, shared by every process on the data home: the manifest
naming the main segment and the delta segments, the `CURRENT` pointer, the build lock, sweeping of old states,
and the ways the state follows the store (a delta per write run, a catch-up by the store's change log, a full
rebuild). The on-disk protocol is described in the package docstring."""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from rag_app.components.lexical import durable
from rag_app.components.lexical.bm25 import (
    FORMAT_VERSION,
    Delta,
    LexicalConfig,
    LexicalIndex,
    MainSegment,
    indexed_text,
    tokenize,
)

log = logging.getLogger(__name__)
#: With background merges the delta may grow to this many times its bound while a merge runs; past it, the write
#: that crosses it merges inline (a merge that keeps failing must not let the delta grow without end).
HARD_LIMIT_FACTOR = 4
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
        start_merge: called (without waiting) when the delta outgrows its bound, to run `merge` off the write path
            (`rag_app.components.lexical_upkeep` starts a process); None: the write that crosses the bound
            rebuilds the main segment itself.
    """

    def __init__(self, root: Path, store: RecordSource, config: LexicalConfig = LexicalConfig(), check_s: float = 0.5,
                 delta_fraction: float = 0.1, mmap: bool = False, delta_min: int = 2000,
                 start_merge: Callable[[], Any] | None = None):
        self.folder = Path(root) / store.name
        self.store = store
        self.config = config
        self.check_s = check_s
        self.delta_fraction = delta_fraction
        self.delta_min = delta_min
        self.mmap = mmap
        self.start_merge = start_merge
        self._index: LexicalIndex | None = None
        self._main: tuple[str, MainSegment] | None = None  # (folder name, segment): kept while manifests name it
        self._checked_at = -1e9
        self._seen_pointer: tuple | None = None
        self._lock = threading.RLock()
        self._reloading = False
        self._upgrading = False  # a merge was started to give an older main segment its records
        #: What this process did: full builds of the main segment, delta segments written, states loaded from disk.
        self.counters = {"full_builds": 0, "delta_writes": 0, "loads": 0, "catch_ups": 0, "records_read": 0,
                         "merges": 0, "merges_started": 0}

    @classmethod
    def from_settings(cls, settings, store: RecordSource, start_merge: Callable[[], Any] | None = None
                      ) -> DerivedLexicalIndex:
        """The index of `store`'s collection under `settings.lexical_dir`, configured by `settings.retrieve`."""
        cfg = settings.retrieve
        return cls(settings.lexical_dir, store, LexicalConfig.from_settings(cfg), cfg.lexical_check_s,
                   cfg.lexical_delta_fraction, mmap=cfg.lexical_mmap, delta_min=cfg.lexical_delta_min,
                   start_merge=start_merge)

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
            if pointer != self._seen_pointer and self._matches(self._stamp_of(self._index), wanted):
                # The same records in a new state on disk (a merge published a new main segment): load it on a
                # thread and answer from this one meanwhile, so no query waits on the load.
                self._start_reload(pointer, wanted)
                self._checked_at = time.monotonic()
                return self._index
            on_disk = self._load_current() if pointer != self._seen_pointer and self._index is not None else None
            if self._matches(self._stamp_of(on_disk), wanted):
                self._index = on_disk  # e.g. a merge published the same records on a new main segment
            elif not self._matches(self._stamp_of(self._index), wanted):
                self._index = self._load_or_build(wanted)
                pointer = self._pointer()
            self._seen_pointer = pointer
            self._checked_at = time.monotonic()
            return self._index

    def _start_reload(self, pointer: tuple | None, wanted: dict[str, Any]) -> None:
        """Load the state `pointer` names on a thread, then serve it if it still matches `wanted` (caller holds the
        lock; one reload at a time)."""
        if self._reloading:
            return
        self._reloading = True

        def reload() -> None:
            try:
                on_disk = self._load_current()
            except Exception:  # noqa: BLE001 - a failed load leaves the index being served; the next write retries
                log.exception("reloading the lexical index of %s failed", self.store.name)
                on_disk = None
            with self._lock:
                self._reloading = False
                self._seen_pointer = pointer  # (given up if it failed: the next state on disk is loaded again)
                if self._matches(self._stamp_of(on_disk), wanted) and self._matches(self._stamp_of(self._index),
                                                                                     wanted):
                    self._index = on_disk

        threading.Thread(target=reload, name=f"lexical-reload-{self.store.name}", daemon=True).start()

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
                bound, hard = self._delta_bounds(manifest)
                if manifest["delta_size"] + len(written) + len(removed) > hard:
                    self._full_refresh(wanted)
                    return
                put, present = self._reread(written)
                removed += [rid for rid in written if rid not in present]  # written, then deleted in the same run
                stamp = {k: v for k, v in wanted.items() if k != "config"}
                self._append_segment(manifest, stamp, {"put": put, "remove": removed}, bound)
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

    def _delta_bounds(self, manifest: dict[str, Any]) -> tuple[int, int]:
        """(the delta size past which the main segment is merged, the most the delta may hold meanwhile)."""
        bound = max(self.delta_min, int(self.delta_fraction * manifest["main_count"]))
        return bound, max(bound, 1) * HARD_LIMIT_FACTOR if self.start_merge is not None else bound

    def _append_segment(self, manifest: dict[str, Any], stamp: dict[str, Any], segment: dict[str, list],
                        bound: int) -> None:
        """Write one delta segment and publish the manifest naming it, stamped `stamp` (caller holds build.lock);
        past `bound`, start a background merge."""
        name = f"seg-{uuid.uuid4().hex[:12]}.json"
        durable.write_json(self.folder / name, segment)
        size = manifest["delta_size"] + len(segment["put"]) + len(segment["remove"])
        self._publish({**manifest, **stamp, "segments": [*manifest["segments"], name], "delta_size": size})
        self.counters["delta_writes"] += 1
        if size > bound and self.start_merge is not None:
            self.counters["merges_started"] += 1
            self.start_merge()

    def merge(self) -> bool:
        """Rebuild the main segment from the store, off the write path, and publish it together with the delta
        segments written meanwhile (re-applied on top: each holds what its write left in the store).

        Runs without the build lock while it reads the store and takes it only to publish. Returns False, having
        published nothing, when another merge holds `merge.lock`, or the state changed in a way it cannot carry over
        (a full rebuild meanwhile; a result that disagrees with the store's count, e.g. when concurrent deletes
        shifted the pages it read): the delta stays, and the next write past the bound tries again.
        """
        from filelock import FileLock, Timeout

        self.folder.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self.folder / "merge.lock"))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            return False
        work = self.folder / f"merging-{uuid.uuid4().hex[:12]}"
        try:
            for leftover in self.folder.glob("merging-*"):  # a killed merge's
                shutil.rmtree(leftover, ignore_errors=True)
            before = self._read_manifest()
            if before is None:
                return False
            work.mkdir()
            main = MainSegment.build(self.store.iter_records(include_documents=True), self.config,
                                     {k: before[k] for k in ("format", "generation", "count")},
                                     spool=work / "records.bin")
            self.counters["records_read"] += len(main)
            if len(np.unique(main.ids)) != len(main):
                return False  # a page read twice: the store moved under the read
            main.save_into(work)
            with FileLock(str(self.folder / "build.lock")):
                now = self._read_manifest()
                if now is None or now["main"] != before["main"] or \
                        now["segments"][:len(before["segments"])] != before["segments"]:
                    return False
                later = now["segments"][len(before["segments"]):]
                delta, size = Delta(), 0
                for name in later:
                    segment = json.loads((self.folder / name).read_text(encoding="utf-8"))
                    delta.apply(segment, main)
                    size += len(segment["put"]) + len(segment["remove"])
                if len(LexicalIndex(main, delta, {}, tuple(later))) != now["count"]:
                    return False
                final = f"main-{uuid.uuid4().hex[:12]}"
                os.rename(work, self.folder / final)
                self._publish({**now, "main": final, "main_count": len(main), "segments": later, "delta_size": size})
                self._sweep(keep={final, *later})
            self.counters["merges"] += 1
            return True
        finally:
            shutil.rmtree(work, ignore_errors=True)
            lock.release()

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
        bound, hard = self._delta_bounds(manifest)
        room = hard - manifest["delta_size"]
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
            self._append_segment(manifest, stamp, segment, bound)
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
                if self._main[1].records is None and self.start_merge is not None and not self._upgrading:
                    # Built before main segments kept their records: every hit's text is then a store read. A
                    # background merge rebuilds it with them, once, while this one serves.
                    self._upgrading = True
                    self.counters["merges_started"] += 1
                    self.start_merge()
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
        tmp = self.folder / f"tmp-{uuid.uuid4().hex[:12]}"  # (a crash's is swept by the next build)
        tmp.mkdir()
        main = MainSegment.build(self.store.iter_records(include_documents=True), self.config, stamp,
                                 spool=tmp / "records.bin")
        self.counters["full_builds"] += 1
        self.counters["records_read"] += len(main)
        index = LexicalIndex(main, Delta(), stamp)
        if not self._matches(self._stamp_of(index), self.wanted_stamp()) or len(main) != stamp["count"]:
            # A write run moved the store while we read it: keep serving this snapshot, but don't persist it (and
            # read its hits' texts from the store).
            main.records = None
            shutil.rmtree(tmp, ignore_errors=True)
            return index
        main.save_into(tmp)
        final = f"main-{uuid.uuid4().hex[:12]}"
        os.rename(tmp, self.folder / final)
        self._main = (final, main)
        self._publish({**stamp, "config": asdict(self.config), "main": final, "main_count": len(main),
                       "segments": [], "delta_size": 0})
        self._sweep(keep={final})
        return index

    def _sweep(self, keep: set[str]) -> None:
        """Delete older states and a crash's leftovers: every state file but `keep` and the current manifest
        (caller holds build.lock; a running merge's folder is `merging-*`, not swept here)."""
        keep = {*keep, (self.folder / "CURRENT").read_text(encoding="utf-8").strip()}
        for old in self.folder.iterdir():
            if old.name in keep or not old.name.startswith(_SWEPT):
                continue
            if old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.unlink(missing_ok=True)

    def _publish(self, manifest: dict[str, Any]) -> None:
        """Write a manifest and point `CURRENT` at it (atomic replace); sweep the manifests before it."""
        name = f"manifest-{uuid.uuid4().hex[:12]}.json"
        durable.write_json(self.folder / name, manifest)
        tmp_pointer = self.folder / f".CURRENT.{uuid.uuid4().hex[:8]}"
        with open(tmp_pointer, "w", encoding="utf-8") as handle:
            handle.write(name)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_pointer, self.folder / "CURRENT")
        for old in self.folder.glob("manifest-*.json"):
            if old.name != name:
                old.unlink(missing_ok=True)

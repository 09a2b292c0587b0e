"""The ingest service: files → documents → chunks → embeddings → the vector store, incrementally and crash-safely.

What is ingested as a whole is a unit (`ingest.units`): a file, or the LangChain documents of one source
(`IngestService.run_documents`). Everything below holds for both.

Why it cannot duplicate or lose data:
- A chunk's id is a hash of its file, document and text, so writing it twice is an upsert of the same record.
- A file counts as up to date only if the store holds exactly `n_chunks` records carrying the file's current hash
  and the current chunking signature (chunker version, sizes, overlap, or the user's splitter). Anything else (new,
  changed, chunked differently, or a run killed half-way) is redone; chunks already stored are not re-embedded.
- For a changed file, new chunks are written first, then kept chunks get fresh metadata, then stale chunks are
  deleted: a crash at any point leaves old data in place, and the next run converges to the same final state.
- Every change goes through `store.write()`: the writer lock, the generation stamp before the first change and
  after the last, and the refresh of the derived lexical index (see `rag_app.components.store`).

What is stored per unit comes from the unit catalog (`ingest.catalog`) when its stamp says it is current, else
from the records' metadata (for a few units, looked up by `path`; else the whole collection's, once); a run that
ends normally then writes the catalog afresh.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ingest.catalog import UnitCatalog, UnitState
from ingest.discover import discover
from ingest.types import Chunk, Document, LoadError
from ingest.units import LANGCHAIN_ORIGIN, IngestUnit, document_units, file_unit
from rag_app.errors import IngestStoppedError
from rag_app.services.protocols import Embeds, WritesChunks
from rag_app.settings import Settings

if TYPE_CHECKING:
    from ingest.chunking import TextSplitter


@dataclass
class FileCounts:
    seen: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    failed: int = 0
    skipped: int = 0


@dataclass
class IngestSummary:
    """What one ingest run did (the CLI's `--json` prints `to_dict()`)."""

    collection: str
    files: FileCounts = field(default_factory=FileCounts)
    failed: list[dict[str, str]] = field(default_factory=list)  # [{path, error}]
    skipped: list[dict[str, str]] = field(default_factory=list)  # unsupported types, with the reason
    chunks_written: int = 0  # chunks embedded and stored by this run
    chunks_deleted: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def ok(self) -> bool:
        return not self.failed


@dataclass
class Progress:
    """A snapshot for progress bars: files done of total, chunks written so far, the current file, and while that
    file is being OCR'd (slow: about a second a page), its pages read of those it needs read."""

    files_done: int
    files_total: int
    chunks_written: int
    chunks_pending: int
    current: str = ""
    pages_done: int = 0
    pages_total: int = 0  # 0: the current file is not being OCR'd


ProgressCallback = Callable[[Progress], None]


@dataclass
class _PendingFile:
    unit: IngestUnit
    retained: dict[str, dict]  # id -> new metadata, for chunks already stored
    stale: list[str]
    is_new: bool


#: Up to this many units, an ingest reads the stored state of just those units (by `path`), not the collection's.
_LOOKUP_MAX_UNITS = 200


def _one_line(reason: str) -> str:
    """A failure's reason as the one line every face shows (a parser's message may hold newlines)."""
    return " ".join(reason.split()) if "\n" in reason or "\r" in reason else reason


def chunk_id(path_key: str, doc_id: str, embed_text: str, occurrence: int) -> str:
    material = f"{path_key}\x00{doc_id}\x00{occurrence}\x00{embed_text}".encode()
    return hashlib.sha256(material).hexdigest()[:32]


class IngestService:
    """Ingests paths (or LangChain documents) into one collection. Takes its components; knows nothing of the CLI
    or the UI.

    Args:
        settings: `settings.chunk` sizes the chunks, `settings.ingest` the batches and the file size limit.
        embedder: sizes chunks in its tokens and embeds them.
        store: the collection.
        splitter: a text splitter to cut documents with instead of ours (see `ingest.chunking.split_document`).
    """

    def __init__(self, settings: Settings, embedder: Embeds, store: WritesChunks,
                 splitter: TextSplitter | None = None):
        self.settings = settings
        self.embedder = embedder
        self.store = store
        self.splitter = splitter

    # ---------------------------------------------------------------------------------------------------------------
    def run(self, paths: list[str | Path], prune: bool = False, progress: ProgressCallback | None = None) -> IngestSummary:
        """Ingest files and folders; one bad file is reported in the summary and the rest go on."""
        with self.store.write():
            return self._run(paths, prune, progress)

    def run_documents(self, documents: Iterable[Any], prune: bool = False,
                      progress: ProgressCallback | None = None) -> IngestSummary:
        """Ingest LangChain `Document`s (any loader's output), one unit per `metadata["source"]`.

        The summary counts sources where a file ingest counts files. With `prune`, every source ingested from
        documents earlier and absent from `documents` is deleted (files ingested from paths are never touched).
        """
        with self.store.write():
            started = time.perf_counter()
            summary = IngestSummary(collection=self.store.name)
            batch = document_units(documents)
            summary.failed.extend(batch.failed)
            summary.skipped.extend(batch.skipped)
            summary.files.seen = len(batch.units) + len(batch.failed)
            summary.files.skipped = len(batch.skipped)
            states = self._stored_state(None if prune else [unit.key for unit in batch.units])
            self._unit_states = states
            seen = self._ingest_units(batch.units, states, summary, progress)
            if prune:
                gone = [key for key, state in states.items() if key not in seen and state.origins == {LANGCHAIN_ORIGIN}]
                self._delete_units(gone, states, summary)
            self._save_catalog()
            return self._finish(summary, started)

    def _run(self, paths: list[str | Path], prune: bool, progress: ProgressCallback | None) -> IngestSummary:
        started = time.perf_counter()
        summary = IngestSummary(collection=self.store.name)
        max_bytes = int(self.settings.ingest.max_file_mb * 1_000_000)
        found = discover(paths, max_bytes)
        for problem in found.problems:
            summary.failed.append({"path": problem.path, "error": problem.error})
        summary.skipped = [{"path": p.path, "error": p.error} for p in found.skipped]
        summary.files.seen = len(found.files) + len(found.problems)
        summary.files.skipped = len(found.skipped)

        units = [file_unit(item) for item in found.files]
        states = self._stored_state(None if prune else [unit.key for unit in units])
        self._unit_states = states
        seen_keys = self._ingest_units(units, states, summary, progress)
        if prune:
            self._prune(found.roots, seen_keys, states, summary)
        self._save_catalog()
        return self._finish(summary, started)

    def _finish(self, summary: IngestSummary, started: float) -> IngestSummary:
        summary.files.failed = len(summary.failed)
        summary.seconds = round(time.perf_counter() - started, 3)
        return summary

    def _ingest_units(self, units: list[IngestUnit], states: dict[str, UnitState], summary: IngestSummary,
                      progress: ProgressCallback | None) -> set[str]:
        """Ingest each unit (a unit that cannot be read is reported and the rest go on; a failure of the store or
        the embedder stops the run with its error); returns the keys of all of them.

        Files are parsed by the parser pool (`ingest.isolation`) a few ahead of the one being chunked and written.
        """
        self._writer = writer = _BatchWriter(self, summary, progress, len(units))
        seen_keys: set[str] = set()
        failure: BaseException | None = None
        try:
            with self._parsers(units) as loads:
                for index, unit in enumerate(units):
                    seen_keys.add(unit.key)
                    writer.current = unit.rel
                    loads.prepare(index + loads.ahead)
                    try:
                        documents = loads.take(index, self._ocr_pages)
                        if documents is not None:
                            self._store_unit(unit, states.get(unit.key), documents)
                        else:
                            summary.files.unchanged += 1
                    except LoadError as exc:
                        summary.failed.append({"path": unit.rel, "error": _one_line(str(exc))})
                    except OSError as exc:
                        summary.failed.append({"path": unit.rel, "error": f"cannot read ({exc.strerror or exc})"})
                    writer.files_done = index + 1
                    writer.pages_done = writer.pages_total = 0
                    writer.report()
            writer.flush()
        except _WriteFailed as failed:  # the store's or the embedder's error, not one file's: the run stops
            failure = failed.error
        finally:
            writer.close()
        if failure is None:
            return seen_keys
        if isinstance(failure, OSError):  # the machine's or the server's state, not a bug: say what to do
            raise IngestStoppedError(
                f"the ingest stopped: the store or the embedder failed ({_one_line(str(failure))}). Files finished "
                f"before it are stored; fix the cause (free disk space, make {self.settings.home} writable, start "
                "the store server), then ingest again: files already stored are skipped") from failure
        raise failure  # as raised, with its own cause and traceback

    def _parsers(self, units: list[IngestUnit]) -> _Loads:
        cfg = self.settings.ingest
        pool = None
        # Workers need POSIX (a socket pair passed to a subprocess); elsewhere files are parsed in this process.
        if cfg.parse_workers > 0 and os.name == "posix" and any(unit.file is not None for unit in units):
            from ingest.isolation import ParserPool

            pool = ParserPool(cfg.parse_workers, cfg.file_timeout_s, cfg.file_memory_mb, cfg.ocr_engine)
        return _Loads(self, units, pool)

    def _needs_load(self, unit: IngestUnit) -> bool:
        state = self._unit_states.get(unit.key)
        return not (state is not None and state.is_complete(unit.hash, self._chunking()))

    def _ocr_pages(self, done: int, total: int) -> None:
        self._writer.pages_done, self._writer.pages_total = done, total
        self._writer.report()

    # ---------------------------------------------------------------------------------------------------------------
    def _stored_state(self, keys: list[str] | None = None) -> dict[str, UnitState]:
        """Per unit (file path or document source): what is stored of it (see the module docstring).

        Args:
            keys: the units wanted; without a current catalog, a few are looked up by their `path` (adding one
                file to a big collection need not read every record's metadata), None or many read the whole
                collection once.
        """
        self._catalog = UnitCatalog(self.settings.catalog_dir, self.store.name) if self.store.single_writer else None
        # The run keeps `_states` up to date as it writes; with the whole collection's states it saves them.
        self._whole = self._catalog_current = self._run_changed = False
        self._states: dict[str, UnitState] = {}
        if self._catalog is not None:
            # Read under the writer lock: no one else moves the stamp now.
            loaded = self._catalog.load(self.store.generation())
            if loaded is not None:
                self._states, self._whole = loaded, True
                self._catalog_current = True
                return loaded
        if self.store.count() == 0:
            self._whole = True  # an empty collection: the whole state is known
            return self._states
        for record_id, meta, _ in self._records_of(keys):
            self._states.setdefault(meta.get("path", ""), UnitState()).add_record(record_id, meta)
        self._whole = keys is None or len(keys) > _LOOKUP_MAX_UNITS
        return self._states

    def _records_of(self, keys: list[str] | None) -> Iterable[tuple[str, dict, None]]:
        if keys is None or len(keys) > _LOOKUP_MAX_UNITS:
            yield from self.store.iter_records()
            return
        for start in range(0, len(keys), 100):
            batch = keys[start:start + 100]
            got = self.store.get_where({"path": batch[0]} if len(batch) == 1 else {"path": {"$in": batch}})
            yield from zip(got["ids"], got["metadatas"], [None] * len(got["ids"]))

    def _ids_of(self, key: str, state: UnitState) -> set[str]:
        """A unit's stored ids (looked up by `path` if its state came from the catalog)."""
        if state.ids is None:
            got = self.store.get_where({"path": key})
            state.ids = set(got["ids"])
        return state.ids

    def _save_catalog(self) -> None:
        """After a run that knew the whole collection's state, write the catalog (unless it is current already)."""
        if self._catalog is None or not self._whole or (self._catalog_current and not self._run_changed):
            return
        catalog, snapshot = self._catalog, dict(self._states)
        self.store.after_write(lambda run: catalog.save(run.stamp, snapshot))

    def _chunking(self) -> str:
        from ingest.chunking import chunking_signature

        cfg = self.settings.chunk
        return chunking_signature(cfg.chunk_tokens, cfg.overlap_tokens, self.splitter)

    def _chunk(self, document: Document) -> list[Chunk]:
        from ingest.chunking import chunk_document, split_document

        limit = self.embedder.max_chunk_tokens  # loads the embedder: only now that something must be chunked
        if self.splitter is not None:
            return split_document(document, self.splitter, self.embedder.count_tokens, limit)
        cfg = self.settings.chunk
        return chunk_document(document, self.embedder.count_tokens, limit, overlap_tokens=cfg.overlap_tokens,
                              target_tokens=min(cfg.chunk_tokens, limit),
                              token_spans=getattr(self.embedder, "token_spans", None))

    def _store_unit(self, unit: IngestUnit, state: UnitState | None, documents: list[Document]) -> None:
        """Chunk a loaded unit and queue what is new for writing (see the module docstring)."""
        chunking = self._chunking()
        unit_hash = unit.hash
        chunks: list[tuple[Chunk, Document]] = []
        for document in documents:
            chunks.extend((chunk, document) for chunk in self._chunk(document))
        if not chunks:
            raise LoadError("no text to index")

        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        kind = documents[0].kind if documents else ""
        occurrences: Counter = Counter()
        new_records: dict[str, tuple[Chunk, dict]] = {}
        for position, (chunk, document) in enumerate(chunks):
            key = (chunk.doc_id, chunk.embed_text)
            record_id = chunk_id(unit.key, chunk.doc_id, chunk.embed_text, occurrences[key])
            occurrences[key] += 1
            new_records[record_id] = (chunk, _metadata(chunk, unit, unit_hash, chunking, position, len(chunks), now,
                                                       kind, document.extra.get("stored_metadata")))

        stored_ids = self._ids_of(unit.key, state) if state else set()
        retained = {rid: meta for rid, (_, meta) in new_records.items() if rid in stored_ids}
        stale = sorted(stored_ids - new_records.keys())
        is_new = not stored_ids
        pending = _PendingFile(unit, retained, stale, is_new)
        to_write = [(rid, chunk, meta) for rid, (chunk, meta) in new_records.items() if rid not in stored_ids]
        self._writer.add_file(pending, to_write)
        # The state this unit has once the run ends normally (the catalog is written only then).
        self._run_changed = True
        self._states[unit.key] = UnitState.written(unit_hash, chunking, str(unit.origin or ""), len(chunks),
                                                   len(new_records))

    def _prune(self, roots: list[Path], seen_keys: set[str], states: dict[str, UnitState], summary: IngestSummary) -> None:
        prefixes = [str(root).rstrip("/") + "/" for root in roots]
        gone = []
        for path_key, state in states.items():
            if path_key in seen_keys or not any(path_key.startswith(p) for p in prefixes):
                continue
            if LANGCHAIN_ORIGIN in state.origins:
                continue  # ingested from documents: only a documents ingest prunes it
            if Path(path_key).exists():
                continue  # still there, e.g. it failed to load this time: keep what we had
            gone.append(path_key)
        self._delete_units(gone, states, summary)

    def _delete_units(self, keys: list[str], states: dict[str, UnitState], summary: IngestSummary) -> None:
        for key in keys:
            ids = self._ids_of(key, states[key])
            self.store.delete(sorted(ids))
            summary.files.deleted += 1
            summary.chunks_deleted += len(ids)
            self._run_changed = True
            self._states.pop(key, None)


class _Loads:
    """The documents of each unit, in order: a file by the parser pool (submitted `ahead` units early, so it is
    parsed while the one before it is embedded), anything else (LangChain documents, or every file when
    `ingest.parse_workers` is 0) in this process when its turn comes. `take` gives None for an unchanged unit."""

    def __init__(self, service: IngestService, units: list[IngestUnit], pool):
        self.service, self.units, self.pool = service, units, pool
        self.ahead = pool.n_workers + 1 if pool is not None else 0
        self._planned: dict[int, tuple[str, Any]] = {}  # index -> ("unchanged" | "job" | "local" | "error", ...)
        self._next = 0

    def __enter__(self) -> _Loads:
        return self

    def __exit__(self, *exc) -> None:
        if self.pool is not None:
            self.pool.close()

    def prepare(self, upto: int) -> None:
        """Decide (and submit) every unit up to index `upto`."""
        while self._next <= min(upto, len(self.units) - 1):
            index, self._next = self._next, self._next + 1
            unit = self.units[index]
            try:
                if not self.service._needs_load(unit):
                    self._planned[index] = ("unchanged", None)
                elif self.pool is not None and unit.file is not None:
                    self._planned[index] = ("job", self.pool.submit(unit.file, unit.rel))
                else:
                    self._planned[index] = ("local", None)
            except OSError as exc:  # hashing the file: reported at its turn
                self._planned[index] = ("error", exc)

    def take(self, index: int, pages) -> list[Document] | None:
        self.prepare(index)
        kind, value = self._planned.pop(index)
        if kind == "unchanged":
            return None
        if kind == "error":
            raise value
        if kind == "job":
            return self.pool.result(value, pages)
        from ingest.loaders.ocr import report_ocr_pages, use_ocr_engine

        unit = self.units[index]
        with use_ocr_engine(self.service.settings.ingest.ocr_engine), report_ocr_pages(pages):
            if unit.file is not None:
                from ingest.isolation import parse_file

                return parse_file(unit.file, unit.rel)
            return unit.load()


def _metadata(chunk: Chunk, unit: IngestUnit, unit_hash: str, chunking: str, position: int, total: int, now: str,
              kind: str, extra: dict[str, Any] | None) -> dict:
    meta = {
        **(extra or {}),  # a LangChain document's own metadata (never one of the names below; see ingest.units)
        "path": unit.key,
        "source": unit.rel,
        "doc_id": chunk.doc_id,
        "title": chunk.title,
        "section": chunk.section,
        "page": chunk.page,
        "start_line": chunk.start_line,
        "end_line": chunk.end_line,
        "start_char": chunk.start_char,
        "end_char": chunk.end_char,
        "kind": kind,
        "chunk_index": position,
        "n_chunks": total,
        "n_tokens": chunk.n_tokens,
        "file_hash": unit_hash,
        "chunking": chunking,
        "content_hash": hashlib.sha256(chunk.text.encode()).hexdigest()[:16],
        "ingested_at": now,
        "origin": unit.origin or None,
    }
    # Locators beyond page/lines (slide, sheet, ocr...); they never override the fields above.
    meta.update({key: value for key, value in chunk.extra.items() if key not in meta})
    # Chroma metadata cannot hold None.
    return {key: value for key, value in meta.items() if value is not None}


@dataclass
class _Batch:
    records: list[tuple[str, Chunk, dict]]
    finished: list[_PendingFile]  # files complete once this batch is stored
    vectors: Future


class _WriteFailed(Exception):
    """Embedding or storing a batch failed: the store's or the embedder's failure, perhaps while another file is
    current, so never reported as that file's; `error` is what was raised."""

    def __init__(self, error: BaseException):
        super().__init__(str(error))
        self.error = error


class _BatchWriter:
    """Embeds and writes chunks in batches across files; finishes a file only after all its chunks are stored.

    A batch is embedded on a helper thread while this thread stores the batch before it and chunks the next files
    (for an embedder whose `count_tokens` may run beside its `embed`; others embed here); every change to the store
    is made here, in order (a file's new chunks are stored before its kept chunks are re-labelled and its stale ones
    deleted), and progress is reported from here (a Streamlit bar cannot be driven from another thread). At most
    one batch is being embedded while the next one fills, so memory stays bounded.
    """

    def __init__(self, service: IngestService, summary: IngestSummary, progress: ProgressCallback | None, files_total: int):
        self.service = service
        self.summary = summary
        self.progress = progress
        self.files_total = files_total
        self.files_done = 0
        self.current = ""
        self.pages_done = 0  # OCR pages of the current file
        self.pages_total = 0
        self.buffer: list[tuple[str, Chunk, dict]] = []
        self.waiting: list[_PendingFile] = []
        self.batch = service.settings.ingest.batch_chunks
        beside = getattr(service.embedder, "counts_while_embedding", False)
        self._embedding = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-embed") if beside else None
        self._in_flight: _Batch | None = None

    def add_file(self, pending: _PendingFile, records: list[tuple[str, Chunk, dict]]) -> None:
        for record in records:
            self.buffer.append(record)
            if len(self.buffer) >= self.batch:
                self._write_buffer()
        self.waiting.append(pending)
        if not self.buffer:
            self._finish_waiting()

    def flush(self) -> None:
        """Store everything buffered or being embedded, then finish the files waiting for it."""
        self._write_buffer()
        self._store_in_flight()
        self._finish_waiting()
        self.close()

    def close(self) -> None:
        """Stop the helper thread (waiting for a batch it is embedding: nothing runs after the ingest returns)."""
        if self._embedding is not None:
            self._embedding.shutdown(wait=True)

    def _write_buffer(self) -> None:
        if not self.buffer:
            return
        records, self.buffer = self.buffer, []
        # Every file queued before this batch has all its chunks in it or in earlier ones.
        finished, self.waiting = self.waiting, []
        vectors = self._embed([chunk.embed_text for _, chunk, _ in records])
        previous, self._in_flight = self._in_flight, _Batch(records, finished, vectors)
        self._store(previous)  # the batch before, while this one is embedded

    def _embed(self, texts: list[str]) -> Future:
        if self._embedding is not None:
            return self._embedding.submit(self.service.embedder.embed, texts)
        done: Future = Future()
        try:
            done.set_result(self.service.embedder.embed(texts))
        except Exception as exc:  # noqa: BLE001 - raised where the batch is stored, as from the helper thread
            done.set_exception(exc)
        return done

    def _finish_waiting(self) -> None:
        """Files whose chunks are all stored or in the batch being embedded: finished once it is stored."""
        finished, self.waiting = self.waiting, []
        if self._in_flight is not None:
            self._in_flight.finished.extend(finished)
        else:
            self._finish(finished)

    def _store_in_flight(self) -> None:
        batch, self._in_flight = self._in_flight, None
        self._store(batch)

    def _store(self, batch: _Batch | None) -> None:
        if batch is None:
            return
        records = batch.records
        try:
            vectors = batch.vectors.result()
            self.service.store.upsert([rid for rid, _, _ in records], vectors,
                                      [chunk.text for _, chunk, _ in records], [meta for _, _, meta in records])
        except Exception as exc:  # noqa: BLE001 - the batch's failure, not the current file's
            raise _WriteFailed(exc) from exc
        self.summary.chunks_written += len(records)
        self._finish(batch.finished)
        self.report()

    def _finish(self, finished: list[_PendingFile]) -> None:
        store = self.service.store
        for pending in finished:
            try:
                if pending.retained:
                    store.update_metadata(list(pending.retained), list(pending.retained.values()))
                if pending.stale:
                    store.delete(pending.stale)
            except Exception as exc:  # noqa: BLE001 - the store's failure, not the current file's
                raise _WriteFailed(exc) from exc
            self.summary.chunks_deleted += len(pending.stale)
            if pending.is_new:
                self.summary.files.added += 1
            else:
                self.summary.files.updated += 1

    def report(self) -> None:
        if self.progress is not None:
            pending = len(self.buffer) + (len(self._in_flight.records) if self._in_flight is not None else 0)
            self.progress(Progress(self.files_done, self.files_total, self.summary.chunks_written, pending,
                                   self.current, self.pages_done, self.pages_total))

"""Parser isolation: files are parsed (`ingest.loaders.load_file`) in worker processes, so a crash, a hang or a
memory blow-up in a parser costs that one file, never the ingest (Apache Tika's ForkParser, done with the standard
library).

- A small pool of worker processes (`ingest.parse_workers`, default 1) parses the files one after another; the
  pipeline submits a file or two ahead, so the next file is parsed while this one is chunked and embedded.
- Each file gets a wall-time limit (`ingest.file_timeout_s`) and a memory limit (`ingest.file_memory_mb`: the
  worker's address space may grow by that much while it parses the file, `RLIMIT_AS`). A worker that runs over,
  crashes or dies is killed and replaced, and the file is reported failed with the reason ("timed out after
  120 s", "needed more than 1024 MB").
- Results travel back as JSON (documents are plain text and scalars): nothing from a worker is unpickled.
- A worker is its own process group (a Ctrl-C in the terminal is the parent's to handle; killing the group also
  ends an OCR command it started) and dies with the thread that started it (Linux `PR_SET_PDEATHSIG`).

Embedding, the store and the write protocol stay in the calling process.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ingest.types import Document, LoadError, Segment

#: How long a new worker may take to start (spawn a Python, import the loaders) on a loaded machine.
STARTUP_GRACE_S = 60.0
_POLL_S = 0.2
#: Workers that may die in a row before starting a file, before the files are failed instead of sent again.
_MAX_FAILED_STARTS = 3

PagesCallback = Callable[[int, int], None]


def parse_file(path: Path, rel: str, memory_mb: int | None = None) -> list[Document]:
    """`load_file`, with every way a parser can fail turned into a `LoadError` with a one-line reason.

    Raises:
        LoadError: the reason (the caller adds the path).
    """
    from ingest.loaders import load_file
    from ingest.loaders.base import short_reason

    try:
        return load_file(path, rel)
    except LoadError:
        raise
    except MemoryError as exc:
        raise LoadError(_memory_reason(memory_mb)) from exc
    except RecursionError as exc:
        raise LoadError("too deeply nested to parse (RecursionError)") from exc
    except OSError as exc:
        raise LoadError(f"cannot read ({exc.strerror or short_reason(exc)})") from exc
    except Exception as exc:  # noqa: BLE001 - a parser bug on one file must not end the ingest
        raise LoadError(f"parser failed ({type(exc).__name__}: {short_reason(exc)})") from exc


def _memory_reason(memory_mb: int | None) -> str:
    if not memory_mb:
        return "needed more memory than was available to parse"
    return f"needed more than {memory_mb} MB to parse (raise RAG_INGEST__FILE_MEMORY_MB to try)"


def documents_to_json(documents: list[Document]) -> list[dict]:
    return [asdict(document) for document in documents]


def documents_from_json(items: list[dict]) -> list[Document]:
    return [Document(**{**item, "segments": [Segment(**seg) for seg in item["segments"]]}) for item in items]


# -- the worker ------------------------------------------------------------------------------------------------------
def _worker_main(conn, parent_pid: int, memory_mb: int, ocr_engine: str) -> None:
    """A worker's loop: one job at a time from `conn`, each answered by "start", any "pages", then "done" or
    "failed". Exits on EOF, on a None job, or after a file ran out of memory (its heap may be in pieces)."""
    _detach(parent_pid)
    from ingest.loaders.ocr import report_ocr_pages, use_ocr_engine

    def send(message: dict) -> None:
        conn.send_bytes(json.dumps(message, ensure_ascii=False, default=str).encode())

    while True:
        try:
            job = json.loads(conn.recv_bytes())
        except (EOFError, OSError):
            return
        if job is None:
            return
        number = job["job"]
        send({"job": number, "event": "start", "t": time.monotonic()})
        out_of_memory = False
        documents: list[Document] = []
        error = None
        restore = _limit_memory(memory_mb)
        try:
            def pages(done: int, total: int, number=number) -> None:
                send({"job": number, "event": "pages", "done": done, "total": total})

            with use_ocr_engine(ocr_engine), report_ocr_pages(pages):
                documents = parse_file(Path(job["path"]), job["rel"], memory_mb)
        except LoadError as exc:
            out_of_memory = isinstance(exc.__cause__, MemoryError)
            error = str(exc)
        except MemoryError:  # while reporting OCR progress
            out_of_memory, error = True, _memory_reason(memory_mb)
        finally:
            restore()  # the reply is built without the limit: the parser's garbage may still fill the heap
        if error is None:
            reply = json.dumps({"job": number, "event": "done", "documents": documents_to_json(documents)},
                               ensure_ascii=False, default=str).encode()
        else:
            reply = json.dumps({"job": number, "event": "failed", "error": error}).encode()
        del documents
        conn.send_bytes(reply)
        if out_of_memory:
            return


def _detach(parent_pid: int) -> None:
    """Die with the parent (Linux), and stop at once if it is gone already. (The worker is started in its own
    session: a Ctrl-C in the terminal is the parent's to handle.)"""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent_pid:
        os._exit(0)


def _limit_memory(memory_mb: int) -> Callable[[], None]:
    """Let the address space grow by at most `memory_mb` from now on; returns what undoes it."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        with open("/proc/self/statm") as handle:
            size = int(handle.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (ImportError, OSError, ValueError):
        return lambda: None  # not Linux: the time limit still holds
    limit = size + memory_mb * 2**20
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    return lambda: resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


# -- the pool --------------------------------------------------------------------------------------------------------
@dataclass
class _Job:
    number: int
    path: str
    rel: str
    worker: _Worker | None = None
    started: float | None = None  # the worker's time.monotonic() (system-wide) when it began the file
    events: list[tuple[int, int]] = field(default_factory=list)  # OCR pages seen before anyone waited
    documents: list[Document] | None = None
    error: str | None = None

    @property
    def finished(self) -> bool:
        return self.documents is not None or self.error is not None


#: What a worker runs: the parent's import path first, then the loop. (Not multiprocessing's spawn: it re-runs the
#: parent's `__main__` in the child, and under Streamlit that is the app script.)
_WORKER_CODE = ("import json, sys; sys.path[:0] = json.loads(sys.argv[1]); "
                "from ingest.isolation import _worker_entry; _worker_entry(sys.argv[2:])")


def _worker_entry(argv: list[str]) -> None:
    from multiprocessing.connection import Connection

    fd, parent_pid, memory_mb, ocr_engine = argv
    _worker_main(Connection(int(fd)), int(parent_pid), int(memory_mb), ocr_engine)


class _Worker:
    def __init__(self, memory_mb: int, ocr_engine: str):
        import multiprocessing
        import subprocess
        import sys

        self.conn, child = multiprocessing.Pipe()  # a socket pair, framed
        self.process = subprocess.Popen(
            [sys.executable, "-c", _WORKER_CODE, json.dumps([p for p in sys.path if p]), str(child.fileno()),
             str(os.getpid()), str(memory_mb), ocr_engine],
            pass_fds=[child.fileno()], stdin=subprocess.DEVNULL, start_new_session=True,
            # Few malloc arenas: each thread's arena reserves 64 MB of address space, which RLIMIT_AS counts.
            env={**os.environ, "MALLOC_ARENA_MAX": os.environ.get("MALLOC_ARENA_MAX", "2")})
        child.close()
        self.queue: deque[_Job] = deque()  # sent and not finished, in order

    def is_alive(self) -> bool:
        return self.process.poll() is None

    def send(self, job: _Job) -> None:
        self.conn.send_bytes(json.dumps({"job": job.number, "path": job.path, "rel": job.rel}).encode())
        self.queue.append(job)
        job.worker = self

    def kill(self) -> None:
        """End this worker and its process group (an OCR command it started) now."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # its own session: the group is its own
        except (ProcessLookupError, PermissionError, OSError):
            pass
        self._reap()

    def close(self) -> None:
        try:
            self.conn.send_bytes(b"null")
        except OSError:
            pass
        try:
            self.process.wait(2)
        except Exception:  # noqa: BLE001 - subprocess.TimeoutExpired: stop it
            self.kill()
        else:
            self.conn.close()

    def _reap(self) -> None:
        try:
            self.process.wait(5)
        except Exception:  # noqa: BLE001 - subprocess.TimeoutExpired: it will be reaped with us
            pass
        self.conn.close()


class ParserPool:
    """Parses files in worker processes, with a time and a memory limit per file.

    Submit files in the order their results will be taken (`submit`, then `result` for each); a few may be
    submitted ahead so that parsing overlaps with the caller's work.

    Args:
        workers: worker processes (at least 1).
        timeout_s: wall time a file may take to parse.
        memory_mb: how much a worker's address space may grow while parsing one file.
        ocr_engine: the `ingest.ocr_engine` setting, for the workers.
    """

    def __init__(self, workers: int = 1, timeout_s: float = 120.0, memory_mb: int = 1024, ocr_engine: str = "auto"):
        # Each worker is a fresh interpreter: nothing of this process's threads, locks or models inherited.
        self.n_workers = max(1, workers)
        self.timeout_s = timeout_s
        self.memory_mb = memory_mb
        self.ocr_engine = ocr_engine
        self._workers: list[_Worker] = []
        self._jobs: dict[int, _Job] = {}
        self._next = 0
        self._failed_starts = 0  # workers in a row that died before starting a file
        self._last_death = ""

    def __enter__(self) -> ParserPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def submit(self, path: Path | str, rel: str) -> int:
        """Queue a file; returns its job number for `result`."""
        job = _Job(self._next, str(path), rel)
        self._next += 1
        self._jobs[job.number] = job
        self._dispatch(job)
        return job.number

    def result(self, number: int, pages: PagesCallback | None = None) -> list[Document]:
        """The file's documents, waiting for them; OCR page progress goes to `pages` as it comes.

        Raises:
            LoadError: the parser's reason, or "timed out after N s", "needed more than N MB", "parser crashed".
        """
        job = self._jobs.pop(number)
        for done, total in job.events:
            if pages is not None:
                pages(done, total)
        job.events.clear()
        waited_from = time.monotonic()
        while not job.finished:
            worker = job.worker
            if worker is None:  # its worker died before it started: send it again
                self._dispatch(job)
                continue
            if worker.conn.poll(_POLL_S):
                self._read(worker, job, pages)
                continue
            now = time.monotonic()
            if job.started is not None and now > job.started + self.timeout_s:
                self._retire(worker, job, f"timed out after {self.timeout_s:g} s (the limit is "
                                          "RAG_INGEST__FILE_TIMEOUT_S)")
            elif job.started is None and now > waited_from + self.timeout_s + STARTUP_GRACE_S:
                self._retire(worker, job, "the parser process did not start")
        if job.error is not None:
            raise LoadError(job.error)
        return job.documents or []

    def close(self) -> None:
        for worker in self._workers:
            worker.close()
        self._workers = []

    # -----------------------------------------------------------------------------------------------------------------
    def _dispatch(self, job: _Job) -> None:
        if self._failed_starts >= _MAX_FAILED_STARTS:
            job.error = f"the parser process could not start ({self._last_death})"
            return
        live = [w for w in self._workers if w.is_alive()]
        if len(live) < self.n_workers:
            live.append(_Worker(self.memory_mb, self.ocr_engine))
        self._workers = live
        worker = min(live, key=lambda w: len(w.queue))
        try:
            worker.send(job)
        except OSError:  # it died just now: collect it, then try another
            self._retire(worker, None, None)
            self._dispatch(job)

    def _read(self, worker: _Worker, waiting: _Job, pages: PagesCallback | None) -> None:
        """One message from `worker` (or the news that it died)."""
        try:
            message = json.loads(worker.conn.recv_bytes())
        except (EOFError, OSError):
            self._retire(worker, None, None)
            return
        job = self._jobs.get(message["job"]) or (waiting if waiting.number == message["job"] else None)
        if job is None:
            return
        event = message["event"]
        if event == "start":
            job.started = message["t"]
            self._failed_starts = 0
        elif event == "pages":
            if job is waiting:
                if pages is not None:
                    pages(message["done"], message["total"])
            else:
                job.events.append((message["done"], message["total"]))
        else:
            if event == "done":
                job.documents = documents_from_json(message["documents"])
            else:
                job.error = message["error"]
            if worker.queue and worker.queue[0] is job:
                worker.queue.popleft()

    def _retire(self, worker: _Worker, culprit: _Job | None, reason: str | None) -> None:
        """Kill a worker that ran over (or collect one that died); the file it was parsing fails with `reason`
        (or the way the worker died), the files queued behind it go to a fresh worker."""
        if reason is None:  # it is ending by itself: let it, to learn how
            try:
                worker.process.wait(2)
            except Exception:  # noqa: BLE001 - subprocess.TimeoutExpired
                pass
        worker.kill()
        code = worker.process.returncode
        self._workers = [w for w in self._workers if w is not worker]
        queue, worker.queue = list(worker.queue), deque()
        running = culprit or next((job for job in queue if job.started is not None), None)
        if running is None and reason is None:
            self._failed_starts += 1  # died before it began a file: a broken interpreter or import path?
            self._last_death = f"exit code {code}"
        for job in queue:
            job.worker = None
            if job is running:
                job.error = reason or _death_reason(code, self.memory_mb)
        for job in queue:
            if job is not running and job.number in self._jobs:
                self._dispatch(job)


def _death_reason(code: int | None, memory_mb: int) -> str:
    """Why a worker we did not stop ended (a SIGKILL from outside is most often the kernel's OOM killer)."""
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        if -code == signal.SIGKILL:
            return f"the parser process was killed (SIGKILL: out of memory? the limit is {memory_mb} MB)"
        return f"the parser crashed ({name}; it may have needed more than {memory_mb} MB)"
    return f"the parser process exited (code {code})"

"""Helpers shared by the reliability tests: a generated corpus, store snapshots, subprocesses and a Chroma server."""

from __future__ import annotations

import contextlib
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
CHROMA = str(Path(sys.executable).with_name("chroma"))

WORDS = ("lantern harbour marmot orchard bramble quartz tide ember falcon willow copper meadow signal "
         "glacier pepper violet thunder saddle beacon cedar ripple canyon mosaic nectar garnet sparrow").split()


# -- a deterministic corpus ------------------------------------------------------------------------------------------
def make_corpus(root: Path, n_files: int = 24, sections: int = 10, seed: int = 7) -> Path:
    """Markdown and text files of seeded random prose; about one chunk per section with the fake embedder."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    for index in range(n_files):
        parts = [f"# Topic {index}\n"]
        for section in range(sections):
            words = " ".join(rng.choice(WORDS) for _ in range(120))
            parts.append(f"## Section {index}.{section}\n\nFact {index}-{section}: {words}.\n")
        suffix = ".md" if index % 3 else ".txt"
        (root / f"sub{index % 4}").mkdir(exist_ok=True)
        (root / f"sub{index % 4}" / f"doc{index:02d}{suffix}").write_text("\n".join(parts), encoding="utf-8")
    return root


# -- reading a store -------------------------------------------------------------------------------------------------
def snapshot(store) -> dict[str, tuple[str, dict]]:
    """Every record as id -> (document, metadata without the run-dependent `ingested_at`)."""
    records = {}
    for record_id, meta, document in store.iter_records(include_documents=True):
        assert record_id not in records, f"duplicate id {record_id}"
        records[record_id] = (document, {k: v for k, v in meta.items() if k != "ingested_at"})
    return records


def assert_vector_index_complete(store, embedder) -> None:
    """Every record's stored vector is in the vector index: a query with it finds the record itself.

    (A single query for all `count` records is not a sound check: HNSW search is approximate, and after deletes it can
    return fewer than k results even when every vector is indexed; CI saw that once.)
    """
    del embedder  # the records' own vectors are the queries
    ids = [record_id for record_id, _, _ in store.iter_records()]
    vectors = store.get_embeddings(ids)
    assert set(vectors) == set(ids), "records without a stored vector"
    missing = [rid for rid in ids if rid not in {hit for hit, _ in store.query_ids(vectors[rid], 10)}]
    assert not missing, f"{len(missing)} of {len(ids)} records not found by their own vector, e.g. {missing[:3]}"


# -- the kill -9 harness (test_crash_safety, test_crash_safety_documents) ------------------------------------------
_CHUNKS = re.compile(r"chunks=(\d+)")


def assert_recovers(home: Path, trial: int, outcome: tuple, expected: dict, ingest) -> None:
    """After a kill -9 in `home`: the lock is free, a reader's BM25 index already matches the store, and a rerun
    (`ingest(home) -> (rag, summary)`) ends exactly at `expected`, with the vector and lexical indexes complete."""
    from rag_app.api import RAG
    from rag_app.settings import Settings

    assert lock_is_free(home), f"trial {trial}: the killed process left the writer lock held"
    # Before any repair, a reader's lexical index already matches what the store holds (a stale stamp rebuilds).
    reader = RAG(Settings(profile="test", home=home))
    lexical = lexical_ids(reader)
    if lexical is not None:
        assert lexical == set(snapshot(reader.store())), f"trial {trial}: lexical index out of sync after kill"
    rag, rerun = ingest(home)
    assert rerun.ok, rerun.failed
    store = rag.store()
    assert snapshot(store) == expected, f"trial {trial} {outcome}"
    assert store.count() == len(expected)
    assert_vector_index_complete(store, rag.embedder)
    lexical = lexical_ids(rag)
    if lexical is not None:
        assert lexical == expected.keys(), f"trial {trial}: lexical index out of sync"


def chunks_seen(text: str) -> int:
    found = _CHUNKS.findall(text)
    return int(found[-1]) if found else -1


def make_v2(corpus) -> None:
    """Change, add and delete files: the second version of the tree."""
    for name in ("sub1/doc01.md", "sub2/doc02.md", "sub1/doc05.md"):  # append a section: most chunks kept
        path = corpus / name
        path.write_text(path.read_text() + "\n## Added later\n\nA new fact about copper canyons.\n")
    for name in ("sub3/doc07.md", "sub0/doc08.md"):  # rewritten: every chunk replaced
        (corpus / name).write_text("# Rewritten\n\nOnly this sentence remains, about nectar and garnets.\n")
    (corpus / "sub0" / "doc04.md").unlink()
    (corpus / "sub3" / "doc11.md").unlink()
    make_corpus(corpus / "new", n_files=4, sections=10, seed=99)


def lock_is_free(home) -> bool:
    from filelock import FileLock, Timeout

    lock = FileLock(str(home / "chroma" / "rag-writer.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return False
    lock.release()
    return True


def lexical_ids(rag):
    """Ids in the collection's lexical index, once the retriever has one (None before it landed)."""
    retriever = rag.retriever()
    if getattr(type(retriever), "lexical", None) is None:
        return None
    return set(retriever.lexical.current().ids)


# -- subprocesses ----------------------------------------------------------------------------------------------------
def rag_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a `python -m rag_app` child in the test profile."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env.update({"RAG_PROFILE": "test", "RAG_HOME": str(home), "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1",
                "ANONYMIZED_TELEMETRY": "False", "PYTHONUNBUFFERED": "1"})
    env.update(extra)
    return env


def rag_cmd(*args: str) -> list[str]:
    return [PYTHON, "-m", "rag_app", *args]


class StderrWatcher:
    """Reads a child's stderr on a thread; `wait_for(pred)` blocks until the text seen so far satisfies it."""

    def __init__(self, proc: subprocess.Popen):
        self.proc = proc
        self.text = ""
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        fd = self.proc.stderr.fileno()
        while True:
            data = os.read(fd, 65536)
            with self._cond:
                if not data:
                    self._cond.notify_all()
                    return
                self.text += data.decode("utf-8", "replace")
                self._cond.notify_all()

    def wait_for(self, predicate, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self.text):
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._thread.is_alive()):
                    return predicate(self.text)
                self._cond.wait(min(left, 0.2))
            return True

    def join(self, timeout: float = 30) -> str:
        self._thread.join(timeout)
        return self.text


def kill9(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)


def run_child(args: list[str], env: dict[str, str], stop_at: str | None = None) -> tuple[str, int]:
    """Run a child script (`args` after the interpreter) to its end, or `kill -9` it once its stderr shows `stop_at`;
    (its stderr, its exit code)."""
    proc = subprocess.Popen([PYTHON, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            cwd=str(Path(args[0]).parent))
    watcher = StderrWatcher(proc)
    if stop_at is not None:
        assert watcher.wait_for(lambda text: stop_at in text, timeout=300), watcher.text[-2000:]
        kill9(proc)
    else:
        proc.wait(timeout=300)
    proc.stdout.close()
    return watcher.join(), proc.returncode


@contextlib.contextmanager
def lock_held_elsewhere(path: Path) -> Iterator[None]:
    """`path`'s file lock held by another process for the duration of the block."""
    holder = subprocess.Popen([sys.executable, "-c", "import sys; from filelock import FileLock; "
                               f"lock = FileLock({str(path)!r}); lock.acquire(); print('held', flush=True); "
                               "sys.stdin.read()"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        yield
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)


# -- a real Chroma server --------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ChromaServer:
    """`chroma run` on a path and port; can be stopped and started again on the same ones."""

    def __init__(self, path: Path, port: int | None = None):
        self.path = path
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.log = path.parent / f"chroma-{self.port}.log"

    def start(self, timeout: float = 90) -> "ChromaServer":
        log = open(self.log, "ab")
        self.proc = subprocess.Popen([CHROMA, "run", "--path", str(self.path), "--host", "127.0.0.1",
                                      "--port", str(self.port)], stdout=log, stderr=subprocess.STDOUT,
                                     env={**os.environ, "ANONYMIZED_TELEMETRY": "False"})
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"chroma exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/api/v2/heartbeat", timeout=2) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"chroma did not answer on {self.url} within {timeout} s")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        self.proc = None


# -- LangChain documents (test_crash_safety_documents) -----------------------------------------------------------------
def corpus_documents(root: Path) -> list:
    """The corpus as a loader would give it: one LangChain `Document` per section, `source` = the relative path."""
    from langchain_core.documents import Document

    docs = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        for number, section in enumerate(path.read_text(encoding="utf-8").split("\n## "), start=1):
            docs.append(Document(page_content=section, metadata={"source": rel, "page": number}))
    return docs

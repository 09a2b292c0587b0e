"""Background merges of a collection's BM25 index: a separate, low-priority process rebuilds the main segment
from the store (`DerivedLexicalIndex.merge`) while the process that asked goes on writing and answering.

A process, not a thread: building the main segment is mostly Python (tokenising every chunk), and a thread would
hold the GIL against the queries of a `rag serve` worker. It is started in its own session, so a `rag ingest`
that crossed the bound can exit at once and the merge still finishes; it writes to `merge.log` in the index's
folder. Killed at any point, it leaves the published state as it was (`merge` publishes atomically at the end).

    python -m rag_app.components.lexical_merge   # reads its job (JSON) on stdin
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

from rag_app.settings import Settings


class BackgroundMerges:
    """Starts the merge process of one collection's index, at most one at a time from this process.

    Args:
        settings: the settings the merge process rebuilds with (data home, store, BM25 choices).
        store: the collection's `VectorStore` (its name, and the embedder fingerprint it records: the process opens
            the collection without an embedder).
    """

    def __init__(self, settings: Settings, store):
        self.settings = settings
        self.store = store
        self.log_path = settings.lexical_dir / store.name / "merge.log"
        self.process: subprocess.Popen | None = None
        self._lock = threading.Lock()

    def __call__(self) -> None:
        with self._lock:
            if self.process is not None and self.process.poll() is None:
                return  # one is running; the next write past the bound starts another if needed
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            code_root = str(Path(__file__).resolve().parents[2])
            env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (code_root, os.environ.get("PYTHONPATH"))
                                                               if p)}
            with open(self.log_path, "ab") as log:
                self.process = subprocess.Popen([sys.executable, "-m", "rag_app.components.lexical_merge"],
                                                stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT, env=env,
                                                start_new_session=True)
            job = {"home": str(self.settings.home), "store": self.settings.store.model_dump(mode="json"),
                   "retrieve": self.settings.retrieve.model_dump(mode="json"), "collection": self.store.name,
                   "fingerprint": self.store.embedder_fingerprint}
            self.process.stdin.write(json.dumps(job).encode())
            self.process.stdin.close()

    def wait(self, timeout_s: float | None = None) -> int | None:
        """Wait for the running merge (if any); its exit code, or None when none was started."""
        process = self.process
        return None if process is None else process.wait(timeout=timeout_s)


def main() -> int:
    try:
        os.nice(10)  # queries and writes first, from the imports on
    except OSError:
        pass
    from rag_app.components.lexical import DerivedLexicalIndex
    from rag_app.components.store import VectorStore

    job = json.load(sys.stdin)
    settings = Settings(home=job["home"], store=job["store"], retrieve=job["retrieve"])
    store = VectorStore(settings, job["fingerprint"], job["collection"], create=False)
    index = DerivedLexicalIndex.from_settings(settings, store)  # (it merges; it starts no merge of its own)
    merged = index.merge()
    print(json.dumps({"collection": job["collection"], "merged": merged, **index.counters}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Run by test_change_log: `python change_log_child.py FILE` ingests one file into the Chroma server of its
environment (`RAG_STORE__URL`). Around each change-log entry it adds and each generation stamp it sets, it prints
`log-step=N NAME` / `log-done=N` on stderr and pauses, so the test can kill it before and after each: before the
run opens, between the announcement of ids and their write, between the data and the close, and before the final
stamp. The pause is the only change: what is written is the real thing."""

from __future__ import annotations

import sys
import time

from rag_app.api import RAG
from rag_app.components import change_log, store

_steps = 0


def paused(name, call):
    def wrapper(self, *args, **kwargs):
        global _steps
        _steps += 1
        label = args[0] if name == "entry" else "stamp"
        print(f"log-step={_steps} {name}:{str(label).rsplit('.', 1)[-1]}", file=sys.stderr, flush=True)
        time.sleep(0.3)
        result = call(self, *args, **kwargs)
        print(f"log-done={_steps}", file=sys.stderr, flush=True)
        time.sleep(0.3)
        return result
    return wrapper


def main() -> None:
    change_log.ChangeLog._add = paused("entry", change_log.ChangeLog._add)
    store.VectorStore._bump_generation = paused("stamp", store.VectorStore._bump_generation)
    summary = RAG().ingest([sys.argv[1]])
    print(f"log-steps={_steps}", file=sys.stderr, flush=True)
    assert summary.ok, summary.failed


if __name__ == "__main__":
    main()

"""Run by test_crash_safety_lexical: `python lexical_child.py FILE` ingests one file in the profile and home of its
environment; `python lexical_child.py --merge` runs the background merge of the default collection's index. Around each durable write of a lexical index file (a delta segment, a main segment's files, a manifest)
it prints `lexical-step=N NAME` / `lexical-done=N` on stderr and pauses, so the test can kill it at every step of a
delta write or a merge. The pause is the only change: the files written are the real ones."""

from __future__ import annotations

import sys
import time

from rag_app.api import RAG
from rag_app.components.lexical import durable

_write = durable.write_json
_steps = 0


def _paused_write(path, payload):
    global _steps
    _steps += 1
    print(f"lexical-step={_steps} {path.name}", file=sys.stderr, flush=True)
    time.sleep(0.4)
    _write(path, payload)
    print(f"lexical-done={_steps}", file=sys.stderr, flush=True)
    time.sleep(0.4)


def main() -> None:
    durable.write_json = _paused_write
    if sys.argv[1] == "--merge":
        from rag_app.components.lexical_upkeep import lexical_index

        rag = RAG()
        assert lexical_index(rag.settings, rag.store()).merge()
    else:
        summary = RAG().ingest([sys.argv[1]])
        assert summary.ok, summary.failed
    print(f"lexical-steps={_steps}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()

"""Two `RAG` workers on one real `chroma run`, each with its own data home: after a write through worker A, how long
until worker B ranks the new text by BM25, and how many records B reads for it. With the store's change log
(now) B re-reads the records the write touched; without it (the baseline: A's store writes no log, as before
issue 30) B rebuilds its BM25 index from the whole collection.

    .venv/bin/python bench/change_log_bench.py --size 100000 --data /tmp/change_log_data

Text: `bench/scale_bench.py`'s generated pages of real passages (~15 chunks a page); vectors: the test profile's
fake embedder (384 dimensions), so the figures are the store's and the index's costs. B polls as a query would
(`retrieve(mode="lexical")`, its stamp check every `retrieve.lexical_check_s` = 0.5 s). Results go to
bench/scale_results.json under "change_log" (keyed by size).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "bench"), str(REPO / "tests" / "reliability")]

from reliability_support import ChromaServer  # noqa: E402
from scale_bench import make_corpus, machine, wait_until  # noqa: E402


def worker(home: Path, url: str, mode: str = "hybrid"):
    from rag_app.api import RAG
    from rag_app.settings import Settings

    return RAG(Settings(profile="test", home=home, embedder={"fake_dim": 384}, retrieve={"mode": mode},
                        store={"url": url, "collection": "shared"}))


def one_write(writer, reader, folder: Path, tag: str) -> dict:
    """Ingest one new page through `writer`; seconds until `reader` finds it by BM25, and what it read for it."""
    token = f"zq{tag}{random.randrange(10**6)}"
    page = folder / f"{token}.md"
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(f"# Added note {token}\n\nThe {token} protocol was added after the archive was indexed.\n")
    lexical = reader.retriever().lexical
    before = dict(lexical.counters)
    started = time.perf_counter()
    summary = writer.ingest([page])
    ingest_s = time.perf_counter() - started
    assert summary.files.added == 1, summary
    retriever = reader.retriever()
    visible_s = wait_until(lambda: any(token in h.text for h in retriever.retrieve(f"{token} protocol", k=3,
                                                                                     mode="lexical")))
    after = lexical.counters
    return {"ingest_s": round(ingest_s, 3), "visible_s": round(ingest_s + visible_s, 3),
            "records_read": after["records_read"] - before["records_read"],
            "full_builds": after["full_builds"] - before["full_builds"],
            "catch_ups": after["catch_ups"] - before["catch_ups"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=100_000, help="chunks in the collection")
    parser.add_argument("--data", type=Path, default=Path("/tmp/change_log_data"))
    parser.add_argument("--writes", type=int, default=5, help="writes timed with the change log")
    parser.add_argument("--baseline-writes", type=int, default=1,
                        help="writes timed without it (full rebuilds; 0 skips them: at 1M each costs two full builds)")
    args = parser.parse_args(argv)

    data = args.data / str(args.size)
    corpus = make_corpus(args.data / f"corpus-{args.size}", args.size)
    data.mkdir(parents=True, exist_ok=True)
    chroma = ChromaServer(data / "chroma").start()
    try:
        writer, reader = worker(data / "home-a", chroma.url), worker(data / "home-b", chroma.url)
        if writer.store().count() < args.size * 0.9:
            # Loaded by a dense-only worker: the collection, without a BM25 index kept (and merged) at every write
            # of the load; re-running resumes it (ingest skips the files already stored).
            started = time.perf_counter()
            summary = worker(data / "home-loader", chroma.url, mode="dense").ingest([corpus])
            print(f"loaded {summary.chunks_written} chunks in {time.perf_counter() - started:.0f} s", flush=True)
        chunks = writer.store().count()
        started = time.perf_counter()
        reader.retriever().lexical.current()
        build_s = time.perf_counter() - started
        print(f"{chunks} chunks; reader's BM25 index ready in {build_s:.1f} s (a full build, or a load of the one a "
              "run before left)", flush=True)
        started = time.perf_counter()
        writer.retriever().lexical.current()  # as a serving worker has: the timed writes then catch up by the log
        writer_s = time.perf_counter() - started
        print(f"writer's BM25 index ready in {writer_s:.1f} s", flush=True)

        with_log = [one_write(writer, reader, data / "added", f"log{i}") for i in range(args.writes)]
        for row in with_log:
            print("change log:", row, flush=True)
        writer.store()._log = None  # the baseline: a writer that logs nothing, as before the change log
        without = [one_write(writer, reader, data / "added", f"base{i}") for i in range(args.baseline_writes)]
        for row in without:
            print("no log:    ", row, flush=True)
    finally:
        chroma.stop()

    result = {"chunks": chunks, "reader_index_ready_s": round(build_s, 2), "writer_index_ready_s": round(writer_s, 2),
              "visible_s_median": statistics.median(r["visible_s"] for r in with_log),
              "visible_s_max": max(r["visible_s"] for r in with_log),
              "records_read_per_write": statistics.median(r["records_read"] for r in with_log),
              "full_builds": sum(r["full_builds"] for r in with_log),
              "baseline_visible_s": statistics.median(r["visible_s"] for r in without) if without else None,
              "baseline_records_read": statistics.median(r["records_read"] for r in without) if without else None,
              "writes": with_log, "baseline_writes": without, "machine": machine(),
              "command": "python bench/change_log_bench.py " + " ".join(argv or sys.argv[1:])}
    print(json.dumps({k: v for k, v in result.items() if k not in ("writes", "baseline_writes", "machine")}))
    path = REPO / "bench" / "scale_results.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    results.setdefault("change_log", {})[str(args.size)] = result
    path.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

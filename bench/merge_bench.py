"""Do queries wait on a BM25 merge? One serving process (8 client threads retrieving, hybrid, k=4) over an embedded
collection; a write through the same process (as a `rag serve` worker handling an upload) crosses the delta bound,
so the main segment is rebuilt: inline (`retrieve.lexical_merge = "inline"`, the behaviour before issue 30: the
writing thread rebuilds while holding the index) or in the background process (now). Reported: retrieve p50/p99
in the steady window before the write and in the window from the write until the merge is published.

    .venv/bin/python bench/merge_bench.py --size 100000 --data /tmp/merge_data
    .venv/bin/python bench/merge_bench.py --size 1000000 --url http://127.0.0.1:8000 --modes background

With `--url`, the serving process works on a Chroma server's collection (as `bench/change_log_bench.py` loads it),
so the merge process reads every record over HTTP.

Text and vectors as in `bench/scale_bench.py` (real passages, the test profile's fake 384-d embedder).
Results go to bench/scale_results.json under "merge" (keyed by size).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "bench")]

from scale_bench import EVAL, make_corpus, machine  # noqa: E402


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


def run(home: Path, mode: str, clients: int, steady_s: float, after_s: float, store: dict, delta_min: int = 0) -> dict:
    from rag_app.api import RAG
    from rag_app.settings import Settings

    settings = Settings(profile="test", home=home, embedder={"fake_dim": 384}, store=store,
                        retrieve={"lexical_merge": mode, "lexical_delta_min": delta_min, "lexical_delta_fraction": 0.0})
    rag = RAG(settings)
    claims = [json.loads(line)["text"] for line in open(EVAL / "scifact" / "queries_dev.jsonl", encoding="utf-8")]
    rag.retrieve(claims[0], k=4)  # loaded, as a serving worker is
    samples: list[tuple[float, float]] = []  # (finished at, latency s)
    stop = threading.Event()

    def client(seed: int) -> None:
        rng = random.Random(seed)
        while not stop.is_set():
            started = time.perf_counter()
            rag.retrieve(rng.choice(claims), k=4)
            samples.append((time.perf_counter(), time.perf_counter() - started))

    threads = [threading.Thread(target=client, args=(seed,), daemon=True) for seed in range(clients)]
    for thread in threads:
        thread.start()
    time.sleep(steady_s)
    page = home / "added" / f"merge-{mode}-{random.randrange(10**6)}.md"
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text("# A note\n\nThe merge benchmark added this page while queries ran.\n")
    write_at = time.perf_counter()
    rag.ingest([page])
    write_s = time.perf_counter() - write_at
    lexical = rag.retriever().lexical
    if mode == "background":
        assert lexical.start_merge.wait(timeout_s=3600) == 0
    merged_at = time.perf_counter()
    time.sleep(after_s)
    stop.set()
    for thread in threads:
        thread.join()
    before = [lat for at, lat in samples if at < write_at]
    during = [lat for at, lat in samples if write_at <= at <= merged_at]
    row = {"mode": mode, "write_s": round(write_s, 2), "merge_window_s": round(merged_at - write_at, 1),
           "queries_before": len(before), "queries_during": len(during)}
    for name, values in (("before", before), ("during", during)):
        row[f"p50_ms_{name}"] = round(1000 * statistics.median(values), 1) if values else None
        row[f"p99_ms_{name}"] = round(1000 * percentile(values, 0.99), 1) if values else None
        row[f"max_ms_{name}"] = round(1000 * max(values), 1) if values else None
    row["p99_ratio"] = round(row["p99_ms_during"] / row["p99_ms_before"], 2) if during and before else None
    if during:  # when the slowest query of the window started, in seconds after the write began
        at, latency = max(((at, lat) for at, lat in samples if write_at <= at <= merged_at), key=lambda x: x[1])
        row["worst_started_s_after_write"] = round(at - latency - write_at, 2)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--data", type=Path, default=Path("/tmp/merge_data"))
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--steady", type=float, default=20.0, help="seconds of queries before the write")
    parser.add_argument("--after", type=float, default=2.0, help="seconds of queries after the merge")
    parser.add_argument("--modes", nargs="+", default=["inline", "background"])
    parser.add_argument("--url", help="a Chroma server holding the collection (as `change_log_bench.py` leaves it); "
                                      "default: an embedded store under --data")
    parser.add_argument("--collection", default="shared", help="the collection on --url")
    parser.add_argument("--delta-min", type=int, default=0,
                        help="the delta size the timed write crosses: the delta the index already holds (an index "
                             "whose delta is past 4× this is rebuilt inline instead of merged)")
    args = parser.parse_args(argv)

    from rag_app.api import RAG
    from rag_app.settings import Settings

    home = args.data / f"home-{args.size}"
    store = {"url": args.url, "collection": args.collection} if args.url else {}
    loader = RAG(Settings(profile="test", home=home, embedder={"fake_dim": 384}, store=store,
                          retrieve={"mode": "dense"}))  # (loading keeps no BM25 index; the first query builds it)
    if loader.store().count() < args.size * 0.9:
        started = time.perf_counter()
        loader.ingest([make_corpus(args.data / f"corpus-{args.size}", args.size)])
        print(f"loaded in {time.perf_counter() - started:.0f} s", flush=True)
    chunks = loader.store().count()
    rows = []
    for mode in args.modes:
        row = run(home, mode, args.clients, args.steady, args.after, store, args.delta_min)
        print(json.dumps(row), flush=True)
        rows.append(row)
    path = REPO / "bench" / "scale_results.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    results.setdefault("merge", {})[str(args.size) + ("-server" if args.url else "")] = {
        "chunks": chunks, "store": "chroma run" if args.url else "embedded", "clients": args.clients, "runs": rows,
        "machine": machine(),
        "command": "python bench/merge_bench.py " + " ".join(argv or sys.argv[1:])}
    path.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

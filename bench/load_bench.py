"""Bounded load test: sustained asks over the bundled corpus, latency percentiles per time window and memory growth.

    python bench/load_bench.py                      # 180 s, scripted LM + fake embedder, 1 asker
    python bench/load_bench.py --seconds 60 --threads 4 --json out.json
    python bench/load_bench.py --real-embedder      # the packaged sentence-transformers embedder

Memory: the process RSS and the Python heap (`sys.getallocatedblocks()`) are sampled every second. After the warm-up
(the first `--warmup` fraction of the run, while bounded caches such as `re`'s 512 compiled patterns, Chroma's and the
allocator's fill), a least-squares line through the RSS samples gives the growth rate; the verdict is
"leak suspected" when that rate, projected over an hour, exceeds `--leak-mb-per-hour`, else "no leak".
The scripted LM records every prompt it sees (a test aid); the bench clears that transcript after each ask, since
it is the fake's memory, not the app's.
"""

from __future__ import annotations

import argparse
import array
import itertools
import json
import re
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from rag_app.eval.metrics import percentile  # the one percentile (linear interpolation, as numpy)

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def questions_from_corpus(corpus: Path) -> list[str]:
    """One question per section heading of the bundled corpus (deterministic order)."""
    found = []
    for page in sorted(corpus.rglob("*.md")):
        for heading in re.findall(r"^##+\s+(.+?)\s*$", page.read_text(encoding="utf-8"), flags=re.M):
            found.append(f"What is {heading.strip().rstrip('?')}?")
    return found or ["What is a variational autoencoder?"]


def slope_per_s(points: list[tuple[float, float]]) -> float:
    if len(points) < 3:
        return 0.0
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    var = sum((x - mean_x) ** 2 for x in xs)
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / var if var else 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=180.0, help="how long to ask (default 180)")
    parser.add_argument("--window", type=float, default=15.0, help="seconds per reporting window (default 15)")
    parser.add_argument("--threads", type=int, default=1, help="concurrent askers (default 1)")
    parser.add_argument("--warmup", type=float, default=0.5, help="fraction of the run excluded from the leak fit")
    parser.add_argument("--leak-mb-per-hour", type=float, default=50.0, help="growth rate called a leak")
    parser.add_argument("--real-embedder", action="store_true", help="use the packaged sentence-transformers model")
    parser.add_argument("--home", help="data home (default: a temp folder, ingested fresh)")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)

    import psutil

    from rag_app.api import RAG, bundled_corpus_dir
    from rag_app.settings import Settings

    home = Path(args.home) if args.home else Path(tempfile.mkdtemp(prefix="rag-load-"))
    if args.real_embedder:
        settings = Settings(home=home, llm={"mode": "scripted"})
    else:
        settings = Settings(profile="test", home=home)
    rag = RAG(settings)
    process = psutil.Process()
    started = time.perf_counter()
    rag.ensure_corpus()
    print(f"corpus ready in {time.perf_counter() - started:.1f} s: {rag.store().count()} chunks; "
          f"embedder {rag.embedder.name}, LM {rag.llm.name}; {args.threads} asker(s) for {args.seconds:.0f} s",
          file=sys.stderr)
    questions = questions_from_corpus(bundled_corpus_dir())
    rag.ask(questions[0])  # build the lexical index and warm the caches before the clock starts
    scripted = getattr(rag.llm, "calls", None)

    # (time since start, seconds) in flat arrays: recording must not itself grow the Python heap per ask
    starts, durations = array.array("d"), array.array("d")
    errors: list[str] = []
    lock = threading.Lock()
    counter = itertools.count()
    t0 = time.perf_counter()
    deadline = t0 + args.seconds

    def asker() -> None:
        while time.perf_counter() < deadline:
            question = questions[next(counter) % len(questions)]
            begin = time.perf_counter()
            try:
                rag.ask(question)
            except Exception as exc:  # noqa: BLE001 - counted and reported
                with lock:
                    errors.append(f"{type(exc).__name__}: {exc}")
                continue
            end = time.perf_counter()
            with lock:
                starts.append(begin - t0)
                durations.append(end - begin)
                if scripted is not None:
                    # The scripted fake records every prompt for test assertions; that transcript is the fake's,
                    # not the app's, so it is not allowed to grow here.
                    scripted.clear()

    threads = [threading.Thread(target=asker, daemon=True) for _ in range(args.threads)]
    for thread in threads:
        thread.start()
    rss: list[tuple[float, float]] = []
    blocks: list[tuple[float, int]] = []  # Python heap: allocated blocks
    while True:
        alive = any(t.is_alive() for t in threads)
        now = time.perf_counter() - t0
        rss.append((now, process.memory_info().rss / 2**20))
        blocks.append((now, sys.getallocatedblocks()))
        if not alive:
            break
        time.sleep(1.0)
    for thread in threads:
        thread.join()

    latencies = list(zip(starts, durations))
    windows = []
    n_windows = max(1, int(round(args.seconds / args.window)))
    for w in range(n_windows):
        lo, hi = w * args.window, (w + 1) * args.window
        lat = [s * 1000 for t, s in latencies if lo <= t < hi]
        mem = [m for t, m in rss if lo <= t < hi] or [rss[-1][1]]
        heap = [b for t, b in blocks if lo <= t < hi] or [blocks[-1][1]]
        windows.append({"from_s": lo, "to_s": hi, "asks": len(lat), "p50_ms": percentile(lat, 50),
                        "p90_ms": percentile(lat, 90), "p99_ms": percentile(lat, 99), "max_ms": max(lat, default=0.0),
                        "rss_mb": round(mem[-1], 1), "py_blocks_k": round(heap[-1] / 1000, 1)})

    warm = [(t, m) for t, m in rss if t >= args.warmup * args.seconds]
    slope = slope_per_s(warm)
    growth_after_warmup = warm[-1][1] - warm[0][1] if warm else 0.0
    per_hour = slope * 3600
    leak = per_hour > args.leak_mb_per_hour
    warm_blocks = [b for t, b in blocks if t >= args.warmup * args.seconds] or [blocks[-1][1]]
    all_lat = [s * 1000 for _, s in latencies]
    report = {
        "seconds": args.seconds, "threads": args.threads, "embedder": rag.embedder.name, "llm": rag.llm.name,
        "asks": len(latencies), "errors": len(errors), "asks_per_s": round(len(latencies) / args.seconds, 2),
        "p50_ms": percentile(all_lat, 50), "p90_ms": percentile(all_lat, 90), "p99_ms": percentile(all_lat, 99),
        "rss_start_mb": round(rss[0][1], 1), "rss_end_mb": round(rss[-1][1], 1),
        "rss_growth_after_warmup_mb": round(growth_after_warmup, 1), "rss_slope_mb_per_hour": round(per_hour, 1),
        "py_blocks_growth_after_warmup": warm_blocks[-1] - warm_blocks[0],
        "verdict": "leak suspected" if leak else "no leak", "windows": windows, "first_errors": errors[:5],
    }

    print(f"{'window':>11} {'asks':>6} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8} {'RSS MB':>8} "
          f"{'py blocks':>10}")
    for w in windows:
        print(f"{w['from_s']:5.0f}-{w['to_s']:<5.0f} {w['asks']:6d} {w['p50_ms']:8.1f} {w['p90_ms']:8.1f} "
              f"{w['p99_ms']:8.1f} {w['max_ms']:8.1f} {w['rss_mb']:8.1f} {w['py_blocks_k']:9.1f}k")
    print(f"total: {report['asks']} asks ({report['asks_per_s']}/s), {report['errors']} errors; "
          f"p50 {report['p50_ms']:.1f} ms, p90 {report['p90_ms']:.1f} ms, p99 {report['p99_ms']:.1f} ms")
    print(f"RSS {report['rss_start_mb']} -> {report['rss_end_mb']} MB; after warm-up {growth_after_warmup:+.1f} MB, "
          f"slope {per_hour:+.1f} MB/hour; Python heap {report['py_blocks_growth_after_warmup']:+d} blocks: "
          f"{report['verdict']}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 1 if errors or leak else 0


if __name__ == "__main__":
    sys.exit(main())

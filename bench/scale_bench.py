"""How each cost grows with the collection: ingest, re-ingest, add-one-document, latency under load, memory, disk,
cold start, at 10k, 100k and 1M chunks.

    flock /work/heavy.lock .venv/bin/python bench/scale_bench.py --sizes 10000 --data /work/scale_data
    flock /work/heavy.lock .venv/bin/python bench/scale_bench.py --sizes 100000 --data /work/scale_data
    .venv/bin/python bench/scale_bench.py --plot docs/scale_curves.png --data /work/scale_data   # from saved results

Text: real. Each file is a Markdown page of 10 sections; a section is a ~150-word passage of a SciFact abstract
(5,183) or a SQuAD paragraph (319), drawn by a seeded generator and recombined, so every chunk is real prose and
BM25 postings grow as they would (the vocabulary saturates as in a large archive of one domain).
Vectors: synthetic. The test profile's fake embedder (bag-of-words hashing, 384 dimensions like the default
model) stands in for the model, so the figures are the store's and the index's costs, not embedding's; its own
cost is measured and printed separately ("fake embed s"). Answers come from the test profile's scripted LM.

Per size, in order: first ingest (chunks/s), re-ingest of the unchanged tree, add one document (ingest time, then
the time until a *separate* warm reader finds it lexically and densely, i.e. what another process sees), then a
serving subprocess: cold start to first answer, hybrid retrieval p50/p95 under 8 concurrent client threads,
steady and peak RSS; disk use of the store and the index. `--baseline PATH` also times the add-one step with the
code at PATH (e.g. /work/main before the lexical delta) in a subprocess, for the before/after figure.
Results are appended to DATA/scale_results.json (one entry per size, the latest wins).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EVAL = REPO.parent / "shared" / "eval"
SECTIONS = 10
CHUNKS_PER_FILE = 15  # measured: 10 sections of 150 words cut into ~200-token chunks
WORDS = 150
TARGETS_MS = {15000: 20.0, 100000: 60.0, 1000000: 150.0}  # p50 targets (issue 15)


def passages(words: int = WORDS) -> list[tuple[str, str]]:
    """(title, ~words-long passage) from SciFact abstracts and SQuAD paragraphs."""
    out = []
    for name in ("scifact", "squad"):
        with open(EVAL / name / "corpus.jsonl", encoding="utf-8") as handle:
            for line in handle:
                row = json.loads(line)
                tokens = row["text"].split()
                for start in range(0, len(tokens), words):
                    piece = tokens[start:start + words]
                    if len(piece) >= 30:
                        out.append((row.get("title") or name, " ".join(piece)))
    return out


def make_corpus(root: Path, n_chunks: int, seed: int = 0) -> Path:
    """Markdown files of recombined passages, ~15 chunks each (kept when already complete)."""
    n_files = max(1, round(n_chunks / CHUNKS_PER_FILE))
    marker = root / ".complete"
    if marker.exists() and marker.read_text() == str(n_files):
        return root
    shutil.rmtree(root, ignore_errors=True)
    pool = passages()
    rng = random.Random(seed)
    for index in range(n_files):
        picked = [pool[rng.randrange(len(pool))] for _ in range(SECTIONS)]
        parts = [f"# Page {index}: {picked[0][0]}\n"]
        parts += [f"## {title}\n\n{text}\n" for title, text in picked]
        folder = root / f"d{index // 1000:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"page{index:07d}.md").write_text("\n".join(parts), encoding="utf-8")
    marker.write_text(str(n_files))
    return root


def settings_for(home: Path, extra: dict | None = None):
    from rag_app.settings import Settings

    return Settings(profile="test", home=home, embedder={"fake_dim": 384}, **(extra or {}))


def disk_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6 if path.exists() else 0.0


def wait_until(found, timeout: float = 900.0) -> float:
    started = time.perf_counter()
    while not found():
        if time.perf_counter() - started > timeout:
            return float("nan")
        time.sleep(0.05)
    return time.perf_counter() - started


def add_one(home: Path, tag: str) -> dict:
    """Ingest one new small file; time until a separate warm reader finds it by BM25 and by dense search."""
    from rag_app.api import RAG

    settings = settings_for(home)
    reader = RAG(settings)
    reader.retrieve("warm up the reader", k=3)  # its lexical index and store are loaded, as a server's would be
    token = f"zq{tag}{random.randrange(10**6)}"
    new = home / "added" / f"{token}.md"
    new.parent.mkdir(parents=True, exist_ok=True)
    sentence = f"The {token} protocol was added after the archive was indexed."
    new.write_text(f"# Added note {token}\n\n{sentence}\n")
    writer = RAG(settings)
    started = time.perf_counter()
    summary = writer.ingest([new])
    ingest_s = time.perf_counter() - started
    assert summary.files.added == 1, summary
    retriever = reader.retriever()

    def found(mode):  # (the fake embedder's vectors match near-identical text: the sentence is the dense query)
        query = sentence if mode == "dense" else f"{token} protocol"
        return lambda: any(token in h.text for h in retriever.retrieve(query, k=3, mode=mode))

    lexical_s = wait_until(found("lexical"))
    dense_s = wait_until(found("dense"))
    counters = dict(getattr(writer.retriever().lexical, "counters", {}))  # (older code has none)
    return {"add_ingest_s": round(ingest_s, 3), "add_lexical_visible_s": round(ingest_s + lexical_s, 3),
            "add_dense_visible_s": round(ingest_s + dense_s, 3), "add_writer_counters": counters,
            "reader_full_builds": getattr(reader.retriever().lexical, "counters", {}).get("full_builds")}


def serve(home: Path, clients: int, queries: int) -> dict:
    """Child: first answer (cold start), then `clients` threads retrieving (hybrid) SciFact dev claims."""
    import psutil

    from rag_app.api import RAG

    # Peak RSS is sampled: ru_maxrss would report the forking parent's high-water mark (kept across exec).
    process, peak, serving = psutil.Process(), [0], [True]

    def sample() -> None:
        while serving[0]:
            peak[0] = max(peak[0], process.memory_info().rss)
            time.sleep(0.02)

    threading.Thread(target=sample, daemon=True).start()
    claims = [json.loads(line)["text"] for line in open(EVAL / "scifact" / "queries_dev.jsonl", encoding="utf-8")]
    rag = RAG(settings_for(home))
    rag.ask(claims[0])
    print("first-answer", flush=True)
    rss_ready = psutil.Process().memory_info().rss
    latencies: list[float] = []
    lock = threading.Lock()

    def client(offset: int) -> None:
        mine = []
        for i in range(queries):
            query = claims[(offset * queries + i) % len(claims)]
            started = time.perf_counter()
            rag.retrieve(query, k=4)
            mine.append((time.perf_counter() - started) * 1000)
        with lock:
            latencies.extend(mine)

    for query in claims[1:6]:
        rag.retrieve(query, k=4)  # warm
    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    serving[0] = False
    ordered = sorted(latencies)
    lexical = rag.retriever().lexical.current()
    index_mb = (lexical.main.data.nbytes + lexical.main.indices.nbytes + lexical.main.indptr.nbytes
                + lexical.main.ids.nbytes + lexical.main.sources.codes.nbytes) / 1e6
    return {"p50_ms": round(statistics.median(ordered), 1), "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))], 1),
            "qps": round(len(ordered) / wall, 1), "clients": clients, "queries": len(ordered),
            "rss_ready_mb": round(rss_ready / 1e6), "rss_steady_mb": round(psutil.Process().memory_info().rss / 1e6),
            "rss_peak_mb": round(max(peak[0], process.memory_info().rss) / 1e6),
            "lexical_arrays_mb": round(index_mb, 1)}


def run_serving(home: Path, clients: int, queries: int) -> dict:
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, __file__, "--serve", str(home), "--clients", str(clients),
                             "--queries", str(queries)], stdout=subprocess.PIPE, text=True, cwd=str(REPO),
                            env={**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"})
    first = proc.stdout.readline()
    cold = time.perf_counter() - started
    assert first.strip() == "first-answer", first
    result = json.loads(proc.stdout.read().strip().splitlines()[-1])
    proc.wait()
    return {"cold_start_s": round(cold, 2), **result}


def baseline_add_one(code: Path, home: Path) -> dict:
    """The add-one step with another checkout's code (its lexical index format is its own: a copy of the home)."""
    copy = home.with_name(home.name + "-baseline")
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(home, copy)
    script = ("import json,sys; sys.path.insert(0, %r); sys.path.insert(1, %r); import scale_bench as b; "
              "print(json.dumps(b.add_one(b.Path(%r), 'base')))") % (str(code), str(REPO / "bench"), str(copy))
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=str(code),
                         env={**os.environ, "PYTHONPATH": str(code)}, timeout=3600)
    shutil.rmtree(copy, ignore_errors=True)
    if out.returncode:
        return {"baseline_error": out.stderr[-500:]}
    row = json.loads(out.stdout.strip().splitlines()[-1])
    return {f"baseline_{k}": v for k, v in row.items() if not k.endswith("counters")}


def measure(size: int, data: Path, clients: int, queries: int, baseline: Path | None) -> dict:
    from rag_app.api import RAG

    corpus = make_corpus(data / f"corpus-{size}", size)
    home = data / f"home-{size}"
    shutil.rmtree(home, ignore_errors=True)
    rag = RAG(settings_for(home))
    row: dict = {"size_target": size}
    sample = [p.read_text(encoding="utf-8") for p in sorted(corpus.rglob("*.md"))[:200]]
    started = time.perf_counter()
    rag.embedder.embed([s[:1000] for s in sample * 5])
    fake_per_chunk = (time.perf_counter() - started) / (len(sample) * 5)
    print(f"[{size}] first ingest ...", file=sys.stderr, flush=True)
    started = time.perf_counter()
    first = rag.ingest([corpus])
    row["ingest_s"] = round(time.perf_counter() - started, 1)
    row["chunks"] = rag.store().count()
    row["ingest_chunks_per_s"] = round(first.chunks_written / row["ingest_s"])
    row["fake_embed_s"] = round(fake_per_chunk * first.chunks_written, 1)
    print(f"[{size}] re-ingest ...", file=sys.stderr, flush=True)
    started = time.perf_counter()
    again = RAG(settings_for(home)).ingest([corpus])
    row["reingest_s"] = round(time.perf_counter() - started, 2)
    assert again.chunks_written == 0 and again.files.unchanged == first.files.added, again
    row["reingest_share"] = round(row["reingest_s"] / row["ingest_s"], 4)
    print(f"[{size}] add one ...", file=sys.stderr, flush=True)
    row.update(add_one(home, "new"))
    print(f"[{size}] serving ...", file=sys.stderr, flush=True)
    row.update(run_serving(home, clients, queries))
    row["disk_store_mb"] = round(disk_mb(home / "chroma"))
    row["disk_lexical_mb"] = round(disk_mb(home / "lexical"))
    if baseline is not None:
        print(f"[{size}] baseline add one ({baseline}) ...", file=sys.stderr, flush=True)
        row.update(baseline_add_one(baseline, home))
    return row


def machine() -> dict:
    flags = ""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        model = re.search(r"Model name:\s*(.+)", out)
        flags = re.search(r"Flags:\s*(.+)", out)
        return {"cpu": model.group(1).strip() if model else "?", "cores": os.cpu_count(),
                "avx512": "avx512f" in (flags.group(1) if flags else ""),
                "flags": flags.group(1).strip() if flags else ""}
    except OSError:
        return {"cpu": "?", "cores": os.cpu_count(), "flags": flags}


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sorted(results.values(), key=lambda r: r["chunks"])
    fig, axes = plt.subplots(2, 2, figsize=(10, 7))
    panels = [
        ("retrieval latency, 8 clients (ms)", [("p50_ms", "p50"), ("p95_ms", "p95")]),
        ("add one document: visible after (s)", [("add_lexical_visible_s", "BM25, delta"),
                                                 ("add_dense_visible_s", "dense"),
                                                 ("baseline_add_lexical_visible_s", "BM25, before (full rebuild)")]),
        ("serving process RSS (MB)", [("rss_steady_mb", "steady"), ("rss_peak_mb", "peak")]),
        ("ingest (s)", [("ingest_s", "first ingest"), ("reingest_s", "re-ingest, unchanged")]),
    ]
    for ax, (title, series) in zip(axes.flat, panels):
        for key, label in series:
            pts = [(r["chunks"], r[key]) for r in rows if isinstance(r.get(key), (int, float))]
            if pts:
                ax.plot(*zip(*pts), marker="o", label=label)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(title)
        ax.set_xlabel("chunks")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("scale_bench.py (fake 384-d vectors, real text); " + results_machine(results))
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def results_machine(results: dict) -> str:
    first = next(iter(results.values()), {})
    info = first.get("machine", {})
    return f"{info.get('cpu', '?')}, {info.get('cores', '?')} cores"


TABLE = [("chunks", "chunks", "{:,}"), ("first ingest, chunks/s (fake embed s)", ("ingest_chunks_per_s", "fake_embed_s"),
          "{:,} ({})"), ("re-ingest unchanged, s (share of first)", ("reingest_s", "reingest_share"), "{} ({:.1%})"),
         ("add one doc: ingest s", "add_ingest_s", "{}"),
         ("add one doc: found by BM25 / dense, s", ("add_lexical_visible_s", "add_dense_visible_s"), "{} / {}"),
         ("before (full rebuild): found by BM25, s", "baseline_add_lexical_visible_s", "{}"),
         ("retrieve p50 / p95, 8 clients, ms", ("p50_ms", "p95_ms"), "{} / {}"),
         ("serving RSS ready / steady / peak, MB", ("rss_ready_mb", "rss_steady_mb", "rss_peak_mb"), "{} / {} / {}"),
         ("BM25 main-segment arrays, MB", "lexical_arrays_mb", "{}"),
         ("disk: store / BM25, MB", ("disk_store_mb", "disk_lexical_mb"), "{:,} / {}"),
         ("cold start to first answer, s", "cold_start_s", "{}")]


def table(results: dict) -> str:
    rows = sorted(results.values(), key=lambda r: r["chunks"])
    lines = ["| | " + " | ".join(f"{r['size_target']:,}" for r in rows) + " |", "|---" * (len(rows) + 1) + "|"]
    for label, keys, fmt in TABLE:
        keys = keys if isinstance(keys, tuple) else (keys,)
        cells = []
        for r in rows:
            try:
                cells.append(fmt.format(*(r[k] for k in keys)))
            except (KeyError, ValueError, TypeError):
                cells.append("—")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[])
    parser.add_argument("--data", type=Path, default=Path("/work/scale_data"))
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--queries", type=int, default=40, help="queries per client")
    parser.add_argument("--baseline", type=Path, help="also time add-one with the code of this checkout")
    parser.add_argument("--plot", type=Path, help="draw the saved results into this PNG")
    parser.add_argument("--reserve", action="store_true",
                        help="rerun only the serving measurement of --sizes (their homes exist) and update the results")
    parser.add_argument("--table", action="store_true", help="print the saved results as a Markdown table")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO))
    if args.serve:
        print(json.dumps(serve(args.serve, args.clients, args.queries)))
        return 0
    args.data.mkdir(parents=True, exist_ok=True)
    saved = args.data / "scale_results.json"
    results = json.loads(saved.read_text()) if saved.exists() else {}
    for size in args.sizes:
        if args.reserve:
            results[str(size)].update(run_serving(args.data / f"home-{size}", args.clients, args.queries))
            saved.write_text(json.dumps(results, indent=1))
            continue
        row = measure(size, args.data, args.clients, args.queries, args.baseline)
        row["machine"] = machine()
        row["command"] = " ".join([Path(sys.executable).name, *sys.argv])
        results[str(size)] = row
        saved.write_text(json.dumps(results, indent=1))
        print(json.dumps({k: v for k, v in row.items() if k != "machine"}))
    sizes = {key: row for key, row in results.items() if key.isdigit()}  # (other benches keep their own keys)
    if args.plot:
        plot(sizes, args.plot)
    if args.table:
        print(table(sizes))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

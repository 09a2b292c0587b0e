"""CPU per hybrid retrieve, single thread, of two or more checkouts side by side on one data home (issue 30).

    python bench/retrieve_cpu.py HOME --code /tmp/base . [--rounds 16 --block 150]
    python bench/retrieve_cpu.py HOME --code /tmp/base . --same     # the hits are the same, bit for bit

Each checkout runs in its own worker process (the home's settings: `scale_bench.settings_for`); the workers take
turns, a block of `--block` SciFact dev claims each (`RAG.retrieve(claim, k=4)`, the claims in order, so a later
pass repeats them), and report `time.process_time()` per query: the median over the rounds is the figure, taken
under the same load for every checkout. `RAG_RETRIEVE__RECORD_CACHE_SIZE=0` in the environment turns the record
cache off in all of them. `--same` dumps every claim's hits (id, score, text, metadata, extras; with and without a
`source_glob`) from each checkout and compares them; Chroma's dense ranking is replayed from the first checkout's
(its HNSW graph may differ by a few candidates between processes), so only this project's code is compared.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _claims() -> list[str]:
    from scale_bench import EVAL

    return [json.loads(line)["text"] for line in open(EVAL / "scifact" / "queries_dev.jsonl", encoding="utf-8")]


def _rag(home: Path):
    from scale_bench import settings_for

    from rag_app.api import RAG

    return RAG(settings_for(home))


def worker(home: Path) -> None:
    """Child: answer each line N on stdin with the CPU ms per query of the next N claims."""
    claims, rag = _claims(), _rag(home)
    for claim in claims[:20]:
        rag.retrieve(claim, k=4)
    print("ready", flush=True)
    at = 0
    for line in sys.stdin:
        started = time.process_time()
        for _ in range(int(line)):
            rag.retrieve(claims[at % len(claims)], k=4)
            at += 1
        print(json.dumps((time.process_time() - started) * 1000 / int(line)), flush=True)


def dump(home: Path, out: Path, dense: Path) -> None:
    """Child: every claim's hits, twice (the second pass with warm caches), with the dense ranking replayed."""
    claims, rag = _claims(), _rag(home)
    retriever = rag.retriever()
    saved = pickle.loads(dense.read_bytes()) if dense.exists() else {}
    query_ids = retriever.store.query_ids

    def replayed(vector, k, where=None):
        key = (vector.astype("float32").tobytes(), k, json.dumps(where, sort_keys=True))
        if key not in saved:
            saved[key] = query_ids(vector, k, where)
        return saved[key]

    retriever.store.query_ids = replayed
    rows = []
    for _ in range(2):
        for claim in claims:
            rows.append([(h.id, h.score, h.text, h.metadata, h.extra) for h in retriever.retrieve(claim, k=4)])
        for claim in claims[:200]:
            hits = retriever.retrieve(claim, k=4, source_glob="*0*")
            rows.append([(h.id, h.score, h.text, h.metadata, h.extra) for h in hits])
    dense.write_bytes(pickle.dumps(saved))
    out.write_text(json.dumps(rows, default=str))


def _child(code: Path, *args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(code)}
    return subprocess.Popen([sys.executable, __file__, *args], env=env, cwd=code, text=True, **kwargs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("home", type=Path)
    parser.add_argument("--code", type=Path, nargs="+", required=True, help="checkouts to compare")
    parser.add_argument("--rounds", type=int, default=16)
    parser.add_argument("--block", type=int, default=150)
    parser.add_argument("--same", action="store_true", help="compare the hits instead of timing")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--dump", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    if args.worker:
        return worker(args.home)
    if args.dump:
        return dump(args.home, *args.dump)
    codes = [code.resolve() for code in args.code]
    if args.same:
        with tempfile.TemporaryDirectory() as tmp:
            dumps = [Path(tmp) / f"hits-{n}.json" for n in range(len(codes))]
            for code, out in zip(codes, dumps):
                if _child(code, str(args.home), "--code", str(code), "--dump", str(out),
                          str(Path(tmp) / "dense.pkl")).wait():
                    raise SystemExit(f"{code}: the dump failed")
            first = json.loads(dumps[0].read_text())
            for code, out in zip(codes[1:], dumps[1:]):
                other = json.loads(out.read_text())
                differ = sum(a != b for a, b in zip(first, other)) + abs(len(first) - len(other))
                print(f"{code}: {differ} of {len(first)} queries differ from {codes[0]}")
        return
    workers = [_child(code, str(args.home), "--code", str(code), "--worker", stdin=subprocess.PIPE,
                      stdout=subprocess.PIPE) for code in codes]
    for proc in workers:
        assert proc.stdout.readline().strip() == "ready"
    figures: dict[Path, list[float]] = {code: [] for code in codes}
    for turn in range(args.rounds):
        pairs = list(zip(codes, workers))
        for code, proc in pairs if turn % 2 == 0 else pairs[::-1]:
            proc.stdin.write(f"{args.block}\n")
            proc.stdin.flush()
            figures[code].append(float(proc.stdout.readline()))
    for code, proc in zip(codes, workers):
        proc.stdin.close()
        proc.wait()
        ms = figures[code]
        print(json.dumps({"code": str(code), "cpu_ms_median": round(statistics.median(ms), 3),
                          "cpu_ms_min": round(min(ms), 3), "rounds": [round(m, 2) for m in ms]}))


if __name__ == "__main__":
    main()

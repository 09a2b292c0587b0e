"""What parsing in worker processes costs a normal ingest (issue 28: within 5 %): `python -m rag_app ingest FOLDER`
with the default models into a fresh collection, alternating between two copies of the code (or between
`ingest.parse_workers` 1 and 0 on this one), round after round, side by side on the same machine.

    git archive <commit-before> | tar -x -C /tmp/before
    python bench/isolation_overhead.py corpus --before /tmp/before --rounds 3
    python bench/isolation_overhead.py scifact500/ --rounds 3          # parse_workers 1 vs 0 on this code

Each variant has its own data home (the packaged embedder is converted once, in a warm-up run); each run ingests
into a new collection, so every run embeds everything. Reported: the summary's `seconds` (the ingest itself) and the
wall time of the command (start-up included).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run(code: Path, home: Path, folder: Path, collection: str, extra: dict[str, str]) -> tuple[float, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env.update({"PYTHONPATH": str(code), "RAG_HOME": str(home), **extra})
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "rag_app", "ingest", str(folder), "--json", "--quiet",
                           "--collection", collection], cwd=code, env=env, capture_output=True, text=True,
                          check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{code}: exit {done.returncode}\n{done.stderr[-2000:]}")
    return json.loads(done.stdout)["seconds"], wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--before", type=Path, help="the other code copy (default: this code with parse_workers=0)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    variants = {"isolated": (REPO, {})}
    variants["before" if args.before else "in-process"] = (args.before or REPO,
                                                           {} if args.before else {"RAG_INGEST__PARSE_WORKERS": "0"})
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    with tempfile.TemporaryDirectory(prefix="overhead-") as tmp:
        homes = {name: Path(tmp) / name for name in variants}
        for name, (code, extra) in variants.items():
            run(code, homes[name], args.folder, "warmup", extra)
        for round_ in range(args.rounds):
            order = list(variants) if round_ % 2 == 0 else list(reversed(variants))
            for name in order:
                code, extra = variants[name]
                seconds, wall = run(code, homes[name], args.folder, f"round{round_}", extra)
                results[name].append((seconds, wall))
                print(f"round {round_ + 1} {name:10} ingest {seconds:7.2f} s   command {wall:7.2f} s", flush=True)
    print(f"{'':10} {'ingest median':>14} {'command median':>15}")
    medians = {}
    for name, runs in results.items():
        medians[name] = (statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs))
        print(f"{name:10} {medians[name][0]:13.2f}s {medians[name][1]:14.2f}s")
    (a, b) = list(medians)
    print(f"isolated vs {b}: ingest {100 * (medians[a][0] / medians[b][0] - 1):+.1f} %, "
          f"command {100 * (medians[a][1] / medians[b][1] - 1):+.1f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())

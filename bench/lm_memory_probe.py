"""Diagnostic: in-process RAG with the real default models (no HTTP), 4 threads asking (half streamed) for
`--seconds`; the process RSS every 10 s and the least-squares slope over the second half.

    python bench/lm_memory_probe.py [--seconds 100] [--threads 4]     (heavy: run it under the shared lock)

Allocator experiments go in the environment (MALLOC_ARENA_MAX=2, MALLOC_MMAP_THRESHOLD_=...)."""
import argparse
import os
import random
import re
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
import psutil
from rag_app.api import RAG
from rag_app.settings import Settings

parser = argparse.ArgumentParser()
parser.add_argument("--seconds", type=float, default=100)
parser.add_argument("--threads", type=int, default=4)
args = parser.parse_args()
qs = []
for page in sorted((REPO / "corpus").rglob("*.md")):
    qs += [f"What is {h.strip().rstrip('?')}?" for h in re.findall(r"^##+\s+(.+?)\s*$", page.read_text(), flags=re.M)]
tmp = tempfile.mkdtemp()
rag = RAG(Settings(home=Path(tmp) / "home"))
rag.ensure_corpus()
rag.ask("warm up?")
proc = psutil.Process()
stop = time.time() + args.seconds
count = [0]
def asker(i):
    rng = random.Random(i)
    while time.time() < stop:
        if i % 2:
            list(rag.stream(rng.choice(qs)))
        else:
            rag.ask(rng.choice(qs))
        count[0] += 1
ts = [threading.Thread(target=asker, args=(i,)) for i in range(args.threads)]
t0 = time.time()
for t in ts: t.start()
samples = []
env = {k: v for k, v in os.environ.items() if k.startswith("MALLOC_") or k.startswith("RAG_")}
print("env", env, "load", os.getloadavg(), flush=True)
while any(t.is_alive() for t in ts):
    rss = proc.memory_info().rss / 2**20
    samples.append((time.time() - t0, rss))
    print(f"{samples[-1][0]:5.0f} s  asks {count[0]:4d}  RSS {rss:7.1f} MB", flush=True)
    time.sleep(10)
half = [s for s in samples if s[0] >= args.seconds / 2]
if len(half) >= 2:
    n = len(half); mx = sum(t for t, _ in half) / n; my = sum(r for _, r in half) / n
    slope = sum((t - mx) * (r - my) for t, r in half) / max(1e-9, sum((t - mx) ** 2 for t, _ in half))
    print(f"slope over the second half: {slope * 60:+.1f} MB/min")
print(f"end asks {count[0]} RSS {proc.memory_info().rss/2**20:.1f} MB load {os.getloadavg()}")

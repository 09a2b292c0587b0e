"""Diagnostic: in-process RAG with the real default models (no HTTP), 4 threads asking (half streamed) for 100 s;
the process RSS every 10 s. `python bench/lm_memory_probe.py` (heavy: run it under the shared lock)."""
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
qs = []
for page in sorted((REPO / "corpus").rglob("*.md")):
    qs += [f"What is {h.strip().rstrip('?')}?" for h in re.findall(r"^##+\s+(.+?)\s*$", page.read_text(), flags=re.M)]
tmp = tempfile.mkdtemp()
rag = RAG(Settings(home=Path(tmp) / "home"))
rag.ensure_corpus()
rag.ask("warm up?")
proc = psutil.Process()
stop = time.time() + 100
count = [0]
def asker(i):
    rng = random.Random(i)
    while time.time() < stop:
        if i % 2:
            list(rag.stream(rng.choice(qs)))
        else:
            rag.ask(rng.choice(qs))
        count[0] += 1
ts = [threading.Thread(target=asker, args=(i,)) for i in range(4)]
t0 = time.time()
for t in ts: t.start()
while any(t.is_alive() for t in ts):
    print(f"{time.time()-t0:5.0f} s  asks {count[0]:4d}  RSS {proc.memory_info().rss/2**20:7.1f} MB", flush=True)
    time.sleep(10)
print(f"end asks {count[0]} RSS {proc.memory_info().rss/2**20:.1f} MB")

"""Memory under a stream of distinct questions, in process: does each new question leave something behind?

    python bench/distinct_questions.py --questions 2000                 # the whole answer path (rag.ask)
    python bench/distinct_questions.py --questions 600 --mode retrieve  # one layer at a time: retrieve | embed |
                                                                        # generate (the LM on the real prompt) | ask
    python bench/distinct_questions.py --questions 600 --tracemalloc     # + the Python heap's top growth sites

The questions are generated from the bundled corpus's sentences (each asked once, none repeated; `--repeat`
asks the first N again as a control). One thread asks them back to back through the Python API with the real
default models; the process RSS is sampled after every `--every` questions. Reports RSS after warm-up (the
first 10 %), at the end, and the least-squares slope over the second half in MB per 100 questions
(flat: |slope| below 1 MB per 100 questions). `--json` writes the samples.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TEMPLATES = ("What does the text say about {}?", "How is {} described?", "Why does {} matter?",
             "What is meant by {}?")


def distinct_questions(corpus: Path, count: int) -> list[str]:
    """Questions about word runs of the corpus's sentences: distinct, on topic, deterministic."""
    from rag_app.text import split_sentences

    phrases: list[str] = []
    seen: set[str] = set()
    for page in sorted(corpus.rglob("*.md")):
        text = re.sub(r"[#*`|>\[\]()_]", " ", page.read_text(encoding="utf-8"))
        for sentence in split_sentences(text):
            words = re.findall(r"[A-Za-z][A-Za-z-]+", sentence)
            for start in range(0, max(0, len(words) - 3), 4):
                phrase = " ".join(words[start:start + 4]).lower()
                if phrase not in seen:
                    seen.add(phrase)
                    phrases.append(phrase)
    questions = [TEMPLATES[i % len(TEMPLATES)].format(p) for i, p in enumerate(phrases)]
    if len(questions) < count:
        raise SystemExit(f"the corpus gives {len(questions)} distinct questions, fewer than --questions {count}")
    return questions[:count]


def slope_per_100(samples: list[tuple[int, float]]) -> float:
    half = samples[len(samples) // 2:]
    if len(half) < 2:
        return float("nan")
    n = len(half)
    mx = sum(q for q, _ in half) / n
    my = sum(r for _, r in half) / n
    var = sum((q - mx) ** 2 for q, _ in half)
    return 100 * sum((q - mx) * (r - my) for q, r in half) / max(var, 1e-9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=int, default=2000)
    parser.add_argument("--mode", choices=("ask", "retrieve", "embed", "generate"), default="ask")
    parser.add_argument("--every", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=0, help="ask only the first N questions, over and over")
    parser.add_argument("--tracemalloc", action="store_true")
    parser.add_argument("--home", type=Path, help="an existing data home (default: a fresh one)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    import psutil

    from rag_app.api import RAG
    from rag_app.settings import Settings

    questions = distinct_questions(REPO / "corpus", args.questions)
    if args.repeat:
        questions = [questions[i % args.repeat] for i in range(args.questions)]
    home = args.home or Path(tempfile.mkdtemp()) / "home"
    rag = RAG(Settings(home=home))
    rag.ensure_corpus()
    rag.ask("What is a variational autoencoder?")
    proc = psutil.Process()
    if args.tracemalloc:
        import tracemalloc
        tracemalloc.start(12)
        first_snapshot = None
    samples: list[tuple[int, float]] = [(0, proc.memory_info().rss / 2**20)]
    started = time.time()
    print(f"mode {args.mode}, {len(questions)} questions, load {os.getloadavg()}, RSS {samples[0][1]:.0f} MB",
          flush=True)
    for done, question in enumerate(questions, 1):
        if args.mode == "ask":
            rag.ask(question)
        elif args.mode == "retrieve":
            rag.retrieve(question)
        elif args.mode == "embed":
            rag.embedder.embed_query(question)
        else:
            evidence = "\n".join(f"[{i}] {hit.text}" for i, hit in enumerate(rag.retrieve(question)[:5], 1))
            rag.llm.generate([{"role": "user", "content": f"{evidence}\nQuestion: {question}"}], max_new_tokens=24)
        if done % args.every == 0:
            rss = proc.memory_info().rss / 2**20
            samples.append((done, rss))
            print(f"{done:5d} questions  {time.time() - started:6.0f} s  RSS {rss:7.1f} MB", flush=True)
            if args.tracemalloc and done == max(args.every, len(questions) // 5):
                first_snapshot = tracemalloc.take_snapshot()
    warm = next((r for q, r in samples if q >= len(questions) // 10), samples[-1][1])
    slope = slope_per_100(samples)
    summary = {"mode": args.mode, "questions": len(questions), "distinct": not args.repeat,
               "seconds": round(time.time() - started, 1), "rss_start_mb": round(samples[0][1], 1),
               "rss_after_warmup_mb": round(warm, 1), "rss_end_mb": round(samples[-1][1], 1),
               "slope_mb_per_100_questions": round(slope, 2), "load": os.getloadavg(),
               "omp_threads": os.environ.get("OMP_NUM_THREADS")}
    print(json.dumps(summary), flush=True)
    if args.tracemalloc and first_snapshot is not None:
        for stat in tracemalloc.take_snapshot().compare_to(first_snapshot, "traceback")[:8]:
            print(stat)
            for line in stat.traceback.format()[-6:]:
                print("   ", line)
    if args.json:
        args.json.write_text(json.dumps({**summary, "samples": samples}, indent=1))


if __name__ == "__main__":
    main()

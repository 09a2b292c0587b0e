"""Latency of the MCP tools over stdio next to the Python API's, on the same questions and the same data home.

    python bench/mcp_latency.py                       # real default models, 20 questions from the bundled corpus
    python bench/mcp_latency.py --questions 5 --test-profile   # fakes: checks the harness in seconds
    python bench/mcp_latency.py --json out.json

`rag mcp` is spawned by the official SDK's stdio client (`ClientSession` over `stdio_client`) on a fresh data
home; it ingests the bundled corpus at start-up, and one warm-up call of each tool waits for that. Then this process
opens `RAG(Settings(home=...))` on the same home (reading only) and warms it up the same way. Each question is then
asked of both faces, one call at a time, the two faces interleaved (which goes first alternates), so a change in
the machine's load hits both alike:

- over stdio: `search_documents` (k=4) and `ask`, timed at the client from the call to its result (JSON-RPC over
  the pipes, the tool's work on the server's answer pool, the mapping onto the output model);
- in process: `rag.retrieve(q, k=4)` and `rag.ask(q)`.

Reports p50 / p95 / mean per tool and face, the per-question difference stdio − in process (median and mean: the
MCP face's cost), and whether the two faces gave the same answer text for every question.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def questions_from_corpus(corpus: Path, n: int) -> list[str]:
    """One question per section heading of the bundled corpus, in file order (same as bench/serve_bench.py)."""
    found = []
    for page in sorted(corpus.rglob("*.md")):
        for heading in re.findall(r"^##+\s+(.+?)\s*$", page.read_text(encoding="utf-8"), flags=re.MULTILINE):
            found.append(f"What is {heading.strip().rstrip('?')}?")
    return found[:n]


def summary(seconds: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in seconds)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    return {"p50_ms": round(statistics.median(ms), 1), "p95_ms": round(p95, 1),
            "mean_ms": round(statistics.fmean(ms), 1), "n": len(ms)}


async def measure(home: Path, questions: list[str], test_profile: bool) -> tuple[dict, dict, float]:
    """{face: {tool: [seconds]}}, {face: [answer texts]}, and the seconds until `rag mcp` answered its warm-up."""
    from mcp import ClientSession, StdioServerParameters, stdio_client

    from rag_app.api import RAG
    from rag_app.settings import Settings

    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env.update({"RAG_HOME": str(home), "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1",
                "ANONYMIZED_TELEMETRY": "False"})
    if test_profile:
        env["RAG_PROFILE"] = "test"
    params = StdioServerParameters(command=sys.executable, args=["-m", "rag_app", "mcp"], env=env, cwd=str(REPO))
    times = {face: {"search_documents": [], "ask": []} for face in ("stdio", "python")}
    answers: dict[str, list[str]] = {"stdio": [], "python": []}
    started = time.perf_counter()
    with open(home.parent / "mcp-server.log", "w", encoding="utf-8") as errlog:  # noqa: ASYNC230 - before the loop runs anything
        async with stdio_client(params, errlog=errlog) as (read, write), \
                ClientSession(read, write, read_timeout_seconds=1800) as session:
            await session.initialize()

            async def over_stdio(tool: str, question: str) -> float:
                arguments = {"query": question, "k": 4} if tool == "search_documents" else {"question": question}
                t0 = time.perf_counter()
                result = await session.call_tool(tool, arguments)
                elapsed = time.perf_counter() - t0
                assert not result.is_error, result.content
                if tool == "ask":
                    answers["stdio"].append(result.structured_content["answer"])
                return elapsed

            def in_process(tool: str, question: str) -> float:
                t0 = time.perf_counter()
                if tool == "search_documents":
                    rag.retrieve(question, k=4)
                else:
                    answers["python"].append(rag.ask(question).text)
                return time.perf_counter() - t0

            for tool in ("search_documents", "ask"):  # warm-up; the first waits for the models and the corpus
                await over_stdio(tool, questions[0])
            ready = time.perf_counter() - started
            rag = RAG(Settings(home=home, profile="test" if test_profile else "default"))
            for tool in ("search_documents", "ask"):
                in_process(tool, questions[0])
            answers = {"stdio": [], "python": []}
            for index, question in enumerate(questions):
                for tool in ("search_documents", "ask"):
                    for face in (("stdio", "python") if index % 2 == 0 else ("python", "stdio")):
                        if face == "stdio":
                            times[face][tool].append(await over_stdio(tool, question))
                        else:
                            times[face][tool].append(in_process(tool, question))
    return times, answers, ready


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=int, default=20, help="questions from the corpus headings (default 20)")
    parser.add_argument("--test-profile", action="store_true", help="fake embedder and scripted LM")
    parser.add_argument("--home", type=Path, help="data home to use (default: a fresh temporary one)")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args()

    from rag_app.api import bundled_corpus_dir

    questions = questions_from_corpus(bundled_corpus_dir(), args.questions)
    with tempfile.TemporaryDirectory(prefix="mcp-latency-") as tmp:
        home = args.home or Path(tmp) / "home"
        home.mkdir(parents=True, exist_ok=True)
        times, answers, ready = asyncio.run(measure(home, questions, args.test_profile))

    rows = {}
    print(f"{len(questions)} questions, {'test profile' if args.test_profile else 'real default models'}; "
          f"rag mcp ready (models loaded, corpus ingested, warm-up calls) after {ready:.1f} s")
    print(f"{'tool':18} {'face':8} {'p50 ms':>9} {'p95 ms':>9} {'mean ms':>9}")
    for tool in ("search_documents", "ask"):
        for face in ("stdio", "python"):
            rows[f"{tool}/{face}"] = stats = summary(times[face][tool])
            print(f"{tool:18} {face:8} {stats['p50_ms']:>9} {stats['p95_ms']:>9} {stats['mean_ms']:>9}")
        paired = [(a - b) * 1000 for a, b in zip(times["stdio"][tool], times["python"][tool])]
        rows[f"{tool}/paired_difference_ms"] = {"p50": round(statistics.median(paired), 1),
                                                "mean": round(statistics.fmean(paired), 1)}
        print(f"{tool:18} stdio - python, same question: median {statistics.median(paired):+.1f} ms, "
              f"mean {statistics.fmean(paired):+.1f} ms")
    same = sum(a == b for a, b in zip(answers["stdio"], answers["python"]))
    print(f"same answer text over both faces: {same}/{len(questions)}")
    if args.json:
        args.json.write_text(json.dumps({"questions": len(questions), "test_profile": args.test_profile,
                                         "ready_s": round(ready, 1), "latency": rows, "same_answers": same},
                                        indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

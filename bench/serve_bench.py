"""Load test of `rag serve`: C concurrent clients for T seconds, mixed chat / streamed chat / retrieve / embeddings.

    python bench/serve_bench.py                          # 60 s, 8 clients, scripted LM + fake embedder
    python bench/serve_bench.py --real --clients 4       # the packaged SmolLM2 LM and MiniLM embedder
    python bench/serve_bench.py --seconds 30 --json out.json
    python bench/serve_bench.py --real --distinct 2000 --clients 2 --mix chat=1,stream=1 --seconds 3600
                                                         # each question asked once (bench/distinct_questions.py)

Starts `python -m rag_app serve` on a free loopback port with a fresh data home (the bundled corpus is ingested at
start-up), waits for GET /ready, then runs the clients (one httpx client and thread each; requests are sent back to
back). Reports throughput, latency percentiles per operation (time to the first token for streams too), errors
(any non-200 or an answer without its `sources` field; must be 0), and the server's RSS sampled every second:
start, peak, end, and the least-squares slope over the second half (flat = no growth under load), per minute and, with
`--distinct N`, per 100 questions: then every request asks a question never asked before, and the run ends when the N
are answered (or at T seconds). Bounded: the server is stopped after the run. Loopback only.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

from rag_app.eval.metrics import percentile  # the one percentile (linear interpolation, as numpy)

REPO = Path(__file__).resolve().parents[1]
OPS = ("chat", "stream", "retrieve", "embed")


def questions_from_corpus(corpus: Path) -> list[str]:
    """One question per section heading of the bundled corpus (deterministic order)."""
    found = []
    for page in sorted(corpus.rglob("*.md")):
        for heading in re.findall(r"^##+\s+(.+?)\s*$", page.read_text(encoding="utf-8"), flags=re.M):
            found.append(f"What is {heading.strip().rstrip('?')}?")
    return found or ["What is a variational autoencoder?"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(home: Path, real: bool, log_path: Path, extra_env: dict[str, str] | None = None
                 ) -> tuple[subprocess.Popen, str, float]:
    import httpx

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env.update({"RAG_HOME": str(home), "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "ANONYMIZED_TELEMETRY": "False"})
    if not real:
        env["RAG_PROFILE"] = "test"
    env.update(extra_env or {})
    started = time.perf_counter()
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "rag_app", "serve", "--port", str(port)], cwd=REPO, env=env,
                                stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    while time.perf_counter() - started < 900:
        if proc.poll() is not None:
            raise SystemExit(f"rag serve exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            if httpx.get(url + "/ready", timeout=2).status_code == 200:
                return proc, url, time.perf_counter() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("rag serve was not ready within 900 s")


class Results:
    def __init__(self):
        self.lock = threading.Lock()
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.first_token: list[float] = []
        self.errors: list[str] = []
        self.count: dict[str, int] = defaultdict(int)

    def ok(self, op: str, ms: float, ttft: float | None = None) -> None:
        with self.lock:
            self.latency[op].append(ms)
            self.count[op] += 1
            if ttft is not None:
                self.first_token.append(ttft)

    def fail(self, op: str, what: str) -> None:
        with self.lock:
            self.count[op] += 1
            self.errors.append(f"{op}: {what}"[:300])


def one_request(http, op: str, question: str, results: Results) -> None:
    started = time.perf_counter()
    messages = [{"role": "user", "content": question}]
    if op == "chat":
        r = http.post("/v1/chat/completions", json={"model": "rag:default", "messages": messages})
        if r.status_code != 200 or "sources" not in r.json():
            return results.fail(op, f"{r.status_code} {r.text[:200]}")
    elif op == "stream":
        ttft = None
        last = None
        with http.stream("POST", "/v1/chat/completions",
                         json={"model": "rag:default", "messages": messages, "stream": True}) as r:
            if r.status_code != 200:
                r.read()
                return results.fail(op, f"{r.status_code} {r.text[:200]}")
            for line in r.iter_lines():
                if not line.startswith("data: "):
                    continue
                if ttft is None and '"content": "' in line and '"content": ""' not in line:
                    ttft = (time.perf_counter() - started) * 1000
                last = line if line != "data: [DONE]" else last
            if last is None or '"sources"' not in last:
                return results.fail(op, "the stream did not end with the sources chunk")
        return results.ok(op, (time.perf_counter() - started) * 1000, ttft)
    elif op == "retrieve":
        r = http.post("/v1/retrieve", json={"query": question, "k": 4})
        if r.status_code != 200 or not r.json()["data"]:
            return results.fail(op, f"{r.status_code} {r.text[:200]}")
    else:
        r = http.post("/v1/embeddings", json={"model": "rag", "input": [question, question[::-1]]})
        if r.status_code != 200 or len(r.json()["data"]) != 2:
            return results.fail(op, f"{r.status_code} {r.text[:200]}")
    results.ok(op, (time.perf_counter() - started) * 1000)


class DistinctFeed:
    """Hands out each question once, across all clients; None when they are used up."""

    def __init__(self, questions: list[str]):
        self._questions = iter(questions)
        self._lock = threading.Lock()

    def __call__(self, rng: random.Random) -> str | None:
        with self._lock:
            return next(self._questions, None)


def client_loop(url: str, slot: int, deadline: float, weights: dict[str, int], pick, results: Results) -> None:
    """Requests back to back until `deadline` or until `pick(rng)` (the next question) gives None."""
    import httpx

    rng = random.Random(slot)
    ops = [op for op in OPS for _ in range(weights.get(op, 0))]
    with httpx.Client(base_url=url, timeout=300) as http:
        while time.perf_counter() < deadline:
            op = rng.choice(ops)
            question = pick(rng)
            if question is None:
                return
            try:
                one_request(http, op, question, results)
            except Exception as exc:  # noqa: BLE001 - counted as an error
                results.fail(op, f"{type(exc).__name__}: {exc}")


def sample_rss(pid: int, stop: threading.Event, samples: list[tuple[float, float, int]], t0: float,
               results: Results) -> None:
    """(seconds, RSS MB, requests done) every second."""
    import psutil

    proc = psutil.Process(pid)
    while not stop.is_set():
        try:
            samples.append((time.perf_counter() - t0, proc.memory_info().rss / 2**20, sum(results.count.values())))
        except psutil.Error:
            return
        stop.wait(1.0)


def slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys over xs (nan with fewer than 3 points)."""
    if len(xs) < 3:
        return float("nan")
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / var if var else 0.0


def slope_mb_per_min(samples: list[tuple[float, float, int]]) -> float:
    """RSS growth over the second half of the run, in MB per minute."""
    half = samples[len(samples) // 2:]
    return 60 * slope([t for t, _, _ in half], [m for _, m, _ in half])


def slope_mb_per_100_requests(samples: list[tuple[float, float, int]]) -> float:
    """RSS growth over the second half of the requests answered, in MB per 100 requests."""
    if not samples:
        return float("nan")
    half = [s for s in samples if s[2] >= samples[-1][2] / 2]
    return 100 * slope([n for _, _, n in half], [m for _, m, _ in half])


def cpu_line() -> str:
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except OSError:
        return "lscpu unavailable"
    model = re.search(r"Model name:\s*(.+)", text)
    cpus = re.search(r"^CPU\(s\):\s*(\d+)", text, re.M)
    flags = set(re.search(r"Flags:\s*(.+)", text).group(1).split()) if "Flags:" in text else set()
    shown = [f for f in ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16") if f in flags]
    return f"{model.group(1).strip() if model else '?'}, {cpus.group(1) if cpus else '?'} CPUs, flags: {' '.join(shown)}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (default 8)")
    parser.add_argument("--seconds", type=float, default=60, help="run length (default 60)")
    parser.add_argument("--real", action="store_true", help="the packaged models instead of the test profile's fakes")
    parser.add_argument("--mix", default="chat=2,stream=2,retrieve=2,embed=1",
                        help="operation weights (default chat=2,stream=2,retrieve=2,embed=1)")
    parser.add_argument("--server-env", action="append", default=[], metavar="NAME=VALUE",
                        help="an environment variable for the server, e.g. MALLOC_ARENA_MAX=2 (repeatable)")
    parser.add_argument("--distinct", type=int, default=0, metavar="N",
                        help="ask N questions never asked before, each once (bench/distinct_questions.py makes them); "
                             "the run ends when they are answered")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)
    weights = {k: int(v) for k, v in (part.split("=") for part in args.mix.split(","))}
    if args.distinct:
        sys.path.insert(0, str(REPO / "bench"))
        from distinct_questions import distinct_questions

        pick = DistinctFeed(distinct_questions(REPO / "corpus", args.distinct))
    else:
        questions = questions_from_corpus(REPO / "corpus")

        def pick(rng: random.Random) -> str:
            return rng.choice(questions)
    load_before = os.getloadavg()

    with tempfile.TemporaryDirectory(prefix="serve-bench-") as tmp:
        extra_env = dict(item.split("=", 1) for item in args.server_env)
        proc, url, startup_s = start_server(Path(tmp) / "home", args.real, Path(tmp) / "serve.log", extra_env)
        try:
            results = Results()
            samples: list[tuple[float, float, int]] = []
            stop = threading.Event()
            t0 = time.perf_counter()
            sampler = threading.Thread(target=sample_rss, args=(proc.pid, stop, samples, t0, results),
                                       daemon=True)
            sampler.start()
            deadline = t0 + args.seconds
            clients = [threading.Thread(target=client_loop, args=(url, slot, deadline, weights, pick, results))
                       for slot in range(args.clients)]
            for thread in clients:
                thread.start()
            for thread in clients:
                thread.join()
            elapsed = time.perf_counter() - t0
            stop.set()
            sampler.join(5)
            import psutil

            cpu = psutil.Process(proc.pid).cpu_times()
        finally:
            proc.terminate()
            proc.wait(30)

    total = sum(results.count.values())
    report = {
        "clients": args.clients, "seconds": round(elapsed, 1), "lm": "SmolLM2 (packaged)" if args.real else "scripted",
        "embedder": "MiniLM (packaged)" if args.real else "fake", "mix": weights, "server_env": args.server_env, "startup_s": round(startup_s, 1),
        "requests": total, "errors": len(results.errors), "throughput_rps": round(total / elapsed, 2),
        "ops": {op: {"n": results.count[op], "p50_ms": round(percentile(v, 50), 1),
                     "p95_ms": round(percentile(v, 95), 1), "p99_ms": round(percentile(v, 99), 1)}
                for op, v in sorted(results.latency.items())},
        "stream_first_token_ms": {"p50": round(percentile(results.first_token, 50), 1),
                                  "p95": round(percentile(results.first_token, 95), 1)},
        "distinct_questions": args.distinct or None,
        "rss_mb": {"start": round(samples[0][1], 1) if samples else None,
                   "peak": round(max(m for _, m, _ in samples), 1) if samples else None,
                   "end": round(samples[-1][1], 1) if samples else None,
                   "slope_second_half_mb_per_min": round(slope_mb_per_min(samples), 2),
                   "slope_second_half_mb_per_100_requests": round(slope_mb_per_100_requests(samples), 2)},
        "rss_timeline_mb": [[round(t), round(m, 1), n] for t, m, n in samples[:: max(1, len(samples) // 12)]],
        "server_cpu_s": round(cpu.user + cpu.system, 1),
        "load_avg_before_after": [round(load_before[0], 1), round(os.getloadavg()[0], 1)],
        "cpu": cpu_line(),
        "first_errors": results.errors[:5],
    }
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 1 if results.errors else 0


if __name__ == "__main__":
    sys.exit(main())

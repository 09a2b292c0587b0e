"""`rag eval answers` in-process and over an OpenAI-compatible server (`transformers serve`), on the same questions.

    flock /work/heavy.lock python bench/openai_eval.py --limit 60 --json out.json

Starts `transformers serve` on a free loopback port, offline, serving the packaged SmolLM2-135M-Instruct converted
under the data home's `cache/llm/` (the folder the in-process LM uses), then runs `python -m rag_app eval answers`
once per configuration on one data home (the first run ingests the corpus, the others reuse it):

- `in-process`: `llm.mode=transformers`, extractive (span-constrained decoding on local logits);
- `openai-extractive`: `llm.mode=openai`, extractive: the span prompt, the reply snapped onto a verbatim evidence span;
- `openai-generative`: `llm.mode=openai`, generative: free answer with `[n]`, checked sentence by sentence.

Prints one line per configuration and, with --json, writes all figures. Latencies depend on the machine's load:
`uptime` is recorded before and after each run.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CONFIGS = {
    "in-process": {"RAG_LLM__MODE": "transformers", "RAG_ANSWER__STRATEGY": "extractive"},
    "openai-extractive": {"RAG_LLM__MODE": "openai", "RAG_ANSWER__STRATEGY": "extractive"},
    "openai-generative": {"RAG_LLM__MODE": "openai", "RAG_ANSWER__STRATEGY": "generative"},
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(model_dir: Path, port: int, log: Path) -> tuple[subprocess.Popen, float]:
    """`transformers serve` pinned to `model_dir`; returns the process and its start-up time (until /health)."""
    cli = Path(sys.executable).with_name("transformers")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    started = time.perf_counter()
    proc = subprocess.Popen([str(cli), "serve", str(model_dir), "--host", "127.0.0.1", "--port", str(port)],
                            stdout=log.open("w"), stderr=subprocess.STDOUT, env=env)
    while time.perf_counter() - started < 180:
        if proc.poll() is not None:
            raise SystemExit(f"transformers serve exited ({proc.returncode}); see {log}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                return proc, time.perf_counter() - started
        except OSError:
            time.sleep(0.25)
    proc.kill()
    raise SystemExit("transformers serve did not come up within 180 s")


def uptime() -> str:
    return Path("/proc/loadavg").read_text().split(" ")[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=REPO.parent / "shared" / "eval" / "squad")
    parser.add_argument("--limit", type=int, default=60)
    parser.add_argument("--home", type=Path, help="data home (default: a temporary one)")
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--details", type=Path, help="folder for one details JSONL per configuration")
    args = parser.parse_args(argv)

    from rag_app.components.packaged_models import converted_packaged_model

    home = args.home or Path(tempfile.mkdtemp(prefix="openai-eval-"))
    model_dir = converted_packaged_model(home / "cache", log=print)
    port = free_port()
    proc, startup_s = start_server(model_dir, port, home / "transformers-serve.log")
    print(f"transformers serve up in {startup_s:.1f} s on port {port}", flush=True)
    results: dict = {"limit": args.limit, "server_startup_s": round(startup_s, 2), "runs": {}}
    try:
        for name in args.configs:
            env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
            env.update(CONFIGS[name], RAG_HOME=str(home), PYTHONPATH=str(REPO))
            if env["RAG_LLM__MODE"] == "openai":
                env.update(RAG_LLM__BASE_URL=f"http://127.0.0.1:{port}/v1", RAG_LLM__MODEL=str(model_dir))
            cmd = [sys.executable, "-m", "rag_app", "eval", "answers", "--corpus", str(args.corpus),
                   "--limit", str(args.limit), "--json"]
            if args.details:
                args.details.mkdir(parents=True, exist_ok=True)
                cmd += ["--details", str(args.details / f"{name}.jsonl")]
            load_before, started = uptime(), time.perf_counter()
            out = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True)
            if out.returncode:
                print(out.stderr[-3000:], file=sys.stderr)
                raise SystemExit(f"{name}: eval failed ({out.returncode})")
            figures = json.loads(out.stdout)
            figures["wall_s"] = round(time.perf_counter() - started, 1)
            figures["load"] = f"{load_before} -> {uptime()}"
            results["runs"][name] = figures
            m, lat = figures["answerable"]["metrics"], figures["answerable"]["latency_ms"]
            print(f"{name:18s} EM {m['em']:.2f}  F1 {m['f1']:.2f}  contained {m['contained']:.1f} %  refused "
                  f"{m['refused']:.1f} %  p50 {lat['p50']:.0f} ms  first token p50 {lat['first_token_p50']:.0f} ms  "
                  f"(wall {figures['wall_s']} s, load {figures['load']})", flush=True)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

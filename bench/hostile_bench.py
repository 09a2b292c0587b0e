"""Per-class figures for hostile input (issue 28): each file of `bench/hostile_corpus.py` ingested on its own by
`python -m rag_app ingest PATH --json`, with its wall time, the peak RSS of the whole process tree (the CLI and any
parser workers, sampled every 50 ms) and the outcome; a run still going after `--kill-after` seconds is killed.
Then the whole folder at once (hostile and ordinary files together).

    python bench/hostile_bench.py                          # this checkout's code
    python bench/hostile_bench.py --code /tmp/before       # another copy of the code (e.g. `git archive` of main)
    python bench/hostile_bench.py --profile test --json out.json

All runs share one data home (models are converted once), each class in its own collection.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from hostile_corpus import BUILDERS, build  # noqa: E402


def run_one(code: Path, home: Path, path: Path, collection: str, profile: str, kill_after: float,
            extra_env: dict[str, str]) -> dict:
    import psutil

    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env.update({"PYTHONPATH": str(code), "RAG_HOME": str(home), "RAG_PROFILE": profile, **extra_env})
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "rag_app", "ingest", str(path), "--json", "--quiet",
                             "--collection", collection], cwd=code, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    peak = 0
    killed = False
    parent = psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            tree = [parent, *parent.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.Error:
            pass
        if time.perf_counter() - started > kill_after:
            os.killpg(proc.pid, signal.SIGKILL)  # the process group this run started, and nothing else
            killed = True
            break
        time.sleep(0.05)
    out, err = proc.communicate()
    seconds = time.perf_counter() - started
    result = {"seconds": round(seconds, 1), "peak_rss_mb": round(peak / 2**20), "exit": proc.returncode}
    if killed:
        result["outcome"] = f"killed after {kill_after:g} s (still running)"
    elif "Traceback" in err:
        result["outcome"] = "traceback: " + err.strip().splitlines()[-1][:160]
    else:
        try:
            summary = json.loads(out)
        except json.JSONDecodeError:
            result["outcome"] = "no summary: " + (err.strip().splitlines() or ["?"])[-1][:160]
        else:
            result["summary"] = summary
            failed = "; ".join(f"{f['path']}: {f['error']}" for f in summary["failed"])
            files = summary["files"]
            result["outcome"] = (f"failed: {failed}" if failed else
                                 f"ingested ({files['added']} file(s), {summary['chunks_written']} chunks)")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--code", type=Path, default=REPO, help="the checkout whose code runs (default: this one)")
    parser.add_argument("--profile", default="default", help="RAG_PROFILE of the runs (default: the real models)")
    parser.add_argument("--kill-after", type=float, default=60.0, help="seconds before a run is killed")
    parser.add_argument("--only", nargs="*", help="classes to run (default: all)")
    parser.add_argument("--no-folder", action="store_true", help="skip the whole-folder run")
    parser.add_argument("--folder-only", action="store_true", help="only the whole-folder run")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--env", nargs="*", default=[], help="extra KEY=VALUE for the runs")
    args = parser.parse_args()
    extra_env = dict(item.split("=", 1) for item in args.env)

    results = {}
    with tempfile.TemporaryDirectory(prefix="hostile-") as tmp:
        corpus, home = Path(tmp) / "corpus", Path(tmp) / "home"
        paths = build(corpus, args.only)
        # Warm-up (not reported): the first ingest of a data home converts the packaged embedder once.
        run_one(args.code, home, corpus / "facts" / "heron.md", "warmup", args.profile, 600, extra_env)
        print(f"code: {args.code}; profile {args.profile}; kill after {args.kill_after:g} s", flush=True)
        print(f"{'class':18} {'seconds':>8} {'peak MB':>8} {'exit':>4}  outcome", flush=True)
        runs = [] if args.folder_only else [(name, paths[name]) for name in (args.only or list(BUILDERS))]
        if not args.no_folder:
            runs.append(("(whole folder)", corpus))
        for index, (name, path) in enumerate(runs):
            result = run_one(args.code, home, path, f"hostile{index:02d}", args.profile, args.kill_after, extra_env)
            results[name] = result
            outcome = result["outcome"]
            if name == "(whole folder)" and "summary" in result:
                files = result["summary"]["files"]
                outcome = (f"{files['added']} added, {files['failed']} failed: "
                           + "; ".join(f"{f['path']}: {f['error'][:60]}" for f in result["summary"]["failed"]))
            print(f"{name:18} {result['seconds']:8.1f} {result['peak_rss_mb']:8d} {str(result['exit']):>4}  "
                  f"{outcome[:400]}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())

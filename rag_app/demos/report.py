"""Run every demo with one preset and print a markdown table of their metrics, with reference rows.

    python -m rag_app.demos.report --preset full            # the table in docs/demos.md
    python -m rag_app.demos.report --preset tiny --demos vae,gan --threads 1

Each run is written under `<out>/<demo>-<preset>` (default `<home>/runs/report-<preset>-<timestamp>`).
Beside wall-clock time the table reports the process CPU time of each run: on a machine shared with other
work the wall clock is inflated, while the CPU time with `--threads 1` approximates an uncontended single core.
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from pathlib import Path

from rag_app.demos import DEMOS, PRESET_NAMES, run_demo

IMAGE_COLUMNS = ("quality", "coverage", "entropy", "fd", "heldout_bits_per_dim", "samples_per_s")


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _fmt(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def run_all(preset: str, demos: list[str], out: Path, device: str, settings=None,
            threads: int = 1) -> dict[str, dict]:
    """Run each demo once; returns {demo: metrics + wall_s + cpu_s}."""
    results = {}
    for name in demos:
        wall, cpu = time.perf_counter(), _cpu_seconds()
        result = run_demo(name, preset, out_dir=out / f"{name}-{preset}", device=device, settings=settings,
                          threads=threads)
        results[name] = {**result.metrics, "wall_s": time.perf_counter() - wall, "cpu_s": _cpu_seconds() - cpu}
        print(f"<!-- {name}: {results[name]['wall_s']:.1f} s wall, {results[name]['cpu_s']:.1f} s CPU -->", flush=True)
    return results


def _steps(row: dict) -> str:
    """Steps done and which limit stopped training, e.g. "812 (time)"."""
    return f"{row.get('steps', 0):,} ({row.get('stopped_by', '?')})"


def markdown(preset: str, results: dict[str, dict], references: dict[str, dict]) -> str:
    lines = [f"### Image demos, preset `{preset}` (500 samples each, scored against the 359 held-out digits)", "",
             "| model | quality ↑ | coverage ↑ | entropy (bits) ↑ | Fréchet distance ↓ | held-out NLL (bits/dim) ↓ "
             "| samples/s | steps (stopped by) | train s | run wall s | run CPU s |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, row in results.items():
        if name == "charlm":
            continue
        cells = [_fmt(row.get(col)) for col in IMAGE_COLUMNS]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {_steps(row)} | {_fmt(row['train_s'])} "
                     f"| {_fmt(row['wall_s'])} | {_fmt(row['cpu_s'])} |")
    for label, row in references.items():
        cells = [_fmt(row.get(col)) for col in IMAGE_COLUMNS]
        lines.append(f"| *{label}* | " + " | ".join(cells) + " | – | – | – | – |")
    if "charlm" in results:
        row = results["charlm"]
        lines += ["", f"### Character-level transformer, preset `{preset}`", "",
                  "| model | held-out bits/char ↓ | unigram bits/char (reference) | uniform bits/char (reference) "
                  "| chars/s | steps (stopped by) | train s | run wall s | run CPU s |",
                  "|---|---|---|---|---|---|---|---|---|",
                  f"| charlm | {_fmt(row['heldout_bits_per_char'])} | {_fmt(row['reference_unigram_bits_per_char'])} "
                  f"| {_fmt(row['reference_uniform_bits_per_char'])} | {_fmt(row['chars_per_s'])} | {_steps(row)} "
                  f"| {_fmt(row['train_s'])} | {_fmt(row['wall_s'])} | {_fmt(row['cpu_s'])} |"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=PRESET_NAMES, default="full")
    parser.add_argument("--demos", default=",".join(DEMOS), help="comma-separated subset of " + ", ".join(DEMOS))
    parser.add_argument("--out", type=Path, default=None, help="folder for the run folders")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: torch's default, one per core)")
    args = parser.parse_args(argv)

    demos = [d.strip() for d in args.demos.split(",") if d.strip()]
    import torch

    from rag_app.demos import metrics
    from rag_app.demos.data import load_digits
    from rag_app.settings import Settings

    if args.threads:
        torch.set_num_threads(args.threads)
    settings = Settings()
    out = args.out or settings.runs_dir / f"report-{args.preset}-{time.strftime('%Y%m%d-%H%M%S')}"
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    digits = load_digits(settings.demos.mnist_dir)
    metrics.load_scorer(digits, settings.cache_dir)  # train or load it first: its one-off cost is not a demo's
    results = run_all(args.preset, demos, out, args.device, settings, args.threads)
    images = any(d != "charlm" for d in demos)
    references = metrics.reference_rows(data=digits, cache_dir=settings.cache_dir) if images else {}
    print(markdown(args.preset, results, references))
    print(f"\n<!-- total {time.perf_counter() - start:.0f} s; torch threads {torch.get_num_threads()}; "
          f"load average before {load_before:.1f}, after {os.getloadavg()[0]:.1f}; {os.cpu_count()} CPUs; "
          f"runs in {out} -->")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

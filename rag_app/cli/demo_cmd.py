"""`rag demo NAME`: train and sample one of the generative demos, with a progress bar.

The run goes under the settings' data home (`--home`, `RAG_HOME`) and trains on MNIST when `RAG_DEMOS__MNIST_DIR`
is set; the tiny preset's training stops at its time budget (`max_seconds`) if its steps take longer.
"""

from __future__ import annotations

import json
import sys


def register(subparsers) -> None:
    from rag_app.demos import DEMOS

    parser = subparsers.add_parser("demo", help="train a small generative model demo (" + ", ".join(DEMOS) + ")")
    parser.add_argument("name", choices=DEMOS)
    parser.add_argument("--preset", default="tiny", choices=("tiny", "full"))
    parser.add_argument("--out", help="output folder (default: HOME/runs/NAME-PRESET-TIME)")
    parser.add_argument("--home", help="data directory for runs and the scorer cache (default: RAG_HOME or the "
                        "per-user data dir)")
    parser.add_argument("--device", default=None, help="auto, cpu, cuda or mps (default: RAG_DEVICE or auto)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: more gain little and slow down badly on busy cores; "
                        "0: one per core)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(func=run)


def run(args) -> int:
    from tqdm import tqdm

    from rag_app.cli import settings_from_args
    from rag_app.demos import run_demo

    settings = settings_from_args(args)  # before the bar: a bad setting is one line, exit code 2

    bar = tqdm(desc=f"{args.name} ({args.preset})", unit="step", file=sys.stderr, dynamic_ncols=True)

    def progress(step: int, total: int, info: dict) -> None:
        bar.total = total
        bar.n = step
        loss = info.get("loss")
        if loss is not None:
            bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
        bar.refresh()

    try:
        result = run_demo(args.name, preset=args.preset, out_dir=args.out, device=settings.device, progress=progress,
                          seed=args.seed, settings=settings, threads=args.threads)
    finally:
        bar.close()
    if args.json:
        print(json.dumps({"name": result.name, "preset": result.preset, "out_dir": str(result.out_dir),
                          "metrics": result.metrics, "files": {k: str(v) for k, v in result.files.items()}}))
    else:
        print(f"wrote {result.out_dir}")
        for key, value in result.metrics.items():
            if isinstance(value, (int, float, str)):
                print(f"  {key}: {value}")
    return 0

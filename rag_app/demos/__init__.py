"""Small PyTorch training demos of generative models, one readable file each (issue 4).

`import rag_app.demos` stays cheap: torch and the demo files are imported only inside `run_demo`.

    from rag_app.demos import run_demo
    result = run_demo("vae", preset="tiny")   # trains, samples, scores; writes five files
    result.metrics["quality"], result.files["samples"]

Each run folder holds samples.png, curve.png, metrics.json, model.safetensors and config.json; `list_runs`
reads them back for a gallery. The CLI (`rag demo vae --preset tiny`) and the Streamlit page call these two.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

DEMOS = ("vae", "gan", "diffusion", "autoencoder", "flow", "charlm")
PRESET_NAMES = ("tiny", "full")

ProgressFn = Callable[[int, int, dict], None]


@dataclass
class DemoResult:
    """What `run_demo` returns: the run's metrics and the paths of its five files."""

    name: str
    preset: str
    out_dir: Path
    metrics: dict
    files: dict[str, Path]  # keys: samples, curve, metrics, checkpoint, config


@dataclass
class DemoRun:
    """One earlier run found on disk by `list_runs`."""

    name: str
    preset: str
    time: str  # ISO timestamp from config.json
    out_dir: Path
    metrics: dict = field(default_factory=dict)


def default_runs_dir() -> Path:
    """<RAG_HOME>/runs, with RAG_HOME defaulting to the platform's user data folder for "rag-app"."""
    from rag_app.demos.output import data_home

    return data_home() / "runs"


def _check_choice(name: str, preset: str) -> None:
    from rag_app.errors import RagError

    if name not in DEMOS:
        raise RagError(f"unknown demo {name!r}: choose one of {', '.join(DEMOS)}")
    if preset not in PRESET_NAMES:
        raise RagError(f"unknown preset {preset!r} for demo {name!r}: choose one of {', '.join(PRESET_NAMES)}")


def run_demo(name: str, preset: str = "tiny", out_dir: str | Path | None = None, device: str = "auto",
             progress: ProgressFn | None = None, seed: int | None = None) -> DemoResult:
    """Train one demo with a preset, sample from it, score the samples and write the run folder.

    Args:
        name: one of `DEMOS`.
        preset: "tiny" (well under a minute on 2 CPU cores) or "full" (a few minutes).
        out_dir: where to write; default `<RAG_HOME>/runs/<name>-<preset>-<timestamp>`.
        device: "auto" (cuda, then mps, then cpu), "cpu", "cuda" or "mps".
        progress: called as `progress(step, total_steps, {"loss": ...})` about 100 times during training.
        seed: overrides the preset's seed.

    Returns:
        A `DemoResult` with the metrics and the paths of samples.png, curve.png, metrics.json,
        model.safetensors and config.json.

    Raises:
        RagError: unknown demo or preset, or an unusable device.
    """
    _check_choice(name, preset)
    import dataclasses
    import importlib

    from rag_app.components.device import resolve_device

    module = importlib.import_module(f"rag_app.demos.{name}")
    config = module.PRESETS[preset]
    if seed is not None:
        config = dataclasses.replace(config, seed=seed)
    if out_dir is None:
        out_dir = default_runs_dir() / f"{name}-{preset}-{time.strftime('%Y%m%d-%H%M%S')}"
    out_dir = Path(out_dir)
    metrics, files = module.run(config, out_dir, preset, resolve_device(device), progress)
    return DemoResult(name=name, preset=preset, out_dir=out_dir, metrics=metrics, files=files)


def list_runs(root: str | Path | None = None) -> list[DemoRun]:
    """Earlier runs under `root` (default `<RAG_HOME>/runs`), newest first; unreadable folders are skipped."""
    root = Path(root) if root is not None else default_runs_dir()
    runs = []
    if not root.is_dir():
        return runs
    for config_path in root.glob("*/config.json"):
        try:
            description = json.loads(config_path.read_text())
            metrics_path = config_path.with_name("metrics.json")
            metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
        except (OSError, ValueError):
            continue
        if description.get("demo") not in DEMOS:
            continue
        runs.append(DemoRun(name=description["demo"], preset=str(description.get("preset", "")),
                            time=str(description.get("created", "")), out_dir=config_path.parent, metrics=metrics))
    runs.sort(key=lambda r: (r.time, str(r.out_dir)), reverse=True)
    return runs


__all__ = ["DEMOS", "PRESET_NAMES", "DemoResult", "DemoRun", "default_runs_dir", "list_runs", "run_demo"]

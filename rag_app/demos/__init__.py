"""Small PyTorch training demos of generative models, one readable file each (issue 4).

`import rag_app.demos` stays cheap: torch and the demo files are imported only inside `run_demo`.

    from rag_app.demos import run_demo
    result = run_demo("vae", preset="tiny")   # trains, samples, scores; writes five files
    result.metrics["quality"], result.files["samples"]

Each run folder holds samples.png, curve.png, metrics.json, model.safetensors and config.json; `list_runs`
reads them back for a gallery. The CLI (`rag demo vae --preset tiny`) and the Streamlit page call these two and
pass their `Settings` (the data home, `demos.mnist_dir`); without one, `Settings()` reads the environment.

Training stops at whichever comes first, the config's `steps` or its `max_seconds` (the tiny presets' wall-clock
budget); metrics.json says which (`stopped_by`), after how many steps and seconds.
"""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from rag_app.settings import Settings

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
    """`<home>/runs` of the settings tree (`RAG_HOME`, default: the platform's user data folder for "rag-app")."""
    from rag_app.settings import Settings

    return Settings().runs_dir


def _check_choice(name: str, preset: str) -> None:
    from rag_app.errors import RagError

    if name not in DEMOS:
        raise RagError(f"unknown demo {name!r}: choose one of {', '.join(DEMOS)}")
    if preset not in PRESET_NAMES:
        raise RagError(f"unknown preset {preset!r} for demo {name!r}: choose one of {', '.join(PRESET_NAMES)}")


def run_demo(name: str, preset: str = "tiny", out_dir: str | Path | None = None, device: str = "auto",
             progress: ProgressFn | None = None, seed: int | None = None, *,
             settings: Settings | None = None, threads: int | None = 1) -> DemoResult:
    """Train one demo with a preset, sample from it, score the samples and write the run folder.

    Args:
        name: one of `DEMOS`.
        preset: "tiny" (under a minute on 2 CPU cores: training stops at its `max_seconds`) or "full" (minutes).
        out_dir: where to write; default `<home>/runs/<name>-<preset>-<timestamp>`.
        device: "auto" (cuda, then mps, then cpu), "cpu", "cuda" or "mps".
        progress: called as `progress(step, total_steps, {"loss": ...})` about 100 times during training;
            `total_steps` is the preset's steps, or fewer when the time budget will stop training first.
        seed: overrides the preset's seed.
        settings: where runs and the digit-scorer cache go (`home`) and the MNIST folder (`demos.mnist_dir`,
            used when the preset names none); default `Settings()`, from the environment.
        threads: torch CPU threads while the demo runs (restored afterwards; the setting is process-wide).
            1 by default: these small tensors gain little from a second thread on idle cores, and training
            ran about 10x slower with two threads than with one on 2 cores shared with other work (docs/demos.md).
            None or 0: leave torch's setting (one thread per core by default).

    Returns:
        A `DemoResult` with the metrics and the paths of samples.png, curve.png, metrics.json,
        model.safetensors and config.json.

    Raises:
        RagError: unknown demo or preset, an unusable device, or bad settings (a `SettingsError`).
    """
    _check_choice(name, preset)
    import dataclasses
    import importlib

    from rag_app.components.device import resolve_device

    if settings is None:
        from rag_app.settings import Settings

        settings = Settings()
    module = importlib.import_module(f"rag_app.demos.{name}")
    config = module.PRESETS[preset]
    changes: dict = {} if seed is None else {"seed": seed}
    image_demo = hasattr(config, "mnist_dir")  # the char-LM reads text, not digits
    if image_demo and config.mnist_dir is None and settings.demos.mnist_dir is not None:
        changes["mnist_dir"] = str(settings.demos.mnist_dir)  # recorded in config.json with the rest
    config = dataclasses.replace(config, **changes)
    if out_dir is None:
        out_dir = settings.runs_dir / f"{name}-{preset}-{time.strftime('%Y%m%d-%H%M%S')}"
    out_dir = Path(out_dir)
    with cpu_threads(threads):
        metrics, files = module.run(config, out_dir, preset, resolve_device(device), progress,
                                    cache_dir=settings.cache_dir)
    return DemoResult(name=name, preset=preset, out_dir=out_dir, metrics=metrics, files=files)


@contextmanager
def cpu_threads(threads: int | None):
    """Run the block with torch's intra-op thread count set to `threads` (None or 0: unchanged)."""
    import torch

    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def list_runs(root: str | Path | None = None) -> list[DemoRun]:
    """Earlier runs under `root` (default: `Settings().runs_dir`), newest first; unreadable folders are skipped."""
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

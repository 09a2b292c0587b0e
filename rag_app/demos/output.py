"""What every demo run leaves on disk (samples.png, curve.png, metrics.json, model.safetensors, config.json),
and the training budget every loop runs under.

Checkpoints describe themselves: the weights are a safetensors file (no pickle, safe to open from anywhere)
and config.json beside them holds the demo name, preset, training step, package version and the full config,
so `load_checkpoint(out_dir)` in each demo file can rebuild the network without guessing.

Every training loop iterates a `Budget`: it stops after `steps` optimiser steps or `max_seconds` of wall-clock
time, whichever comes first, and `budget_summary` records in metrics.json which of the two stopped it.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict
from pathlib import Path

CHECKPOINT_FORMAT = 1  # bump when the layout of config.json / model.safetensors changes
FILES = {
    "samples": "samples.png",
    "curve": "curve.png",
    "metrics": "metrics.json",
    "checkpoint": "model.safetensors",
    "config": "config.json",
}


def package_version() -> str:
    try:
        from importlib.metadata import version

        return version("rag-app")
    except Exception:  # running from a source tree that was never installed
        return "0+unknown"


def save_grid(images, path: Path, nrow: int = 8, scale: int = 4) -> Path:
    """Tile (N, 1, H, W) images in [0, 1] into one PNG, each pixel drawn as a scale x scale block."""
    import numpy as np
    from PIL import Image

    arr = images.detach().float().clamp(0, 1).cpu().numpy()[:, 0]  # (N, H, W)
    n, h, w = arr.shape
    ncol = nrow
    nrows = math.ceil(n / ncol)
    pad = 1
    canvas = np.ones((nrows * (h + pad) + pad, ncol * (w + pad) + pad), dtype=np.float32) * 0.5
    for i in range(n):
        r, c = divmod(i, ncol)
        canvas[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + c * (w + pad) : pad + c * (w + pad) + w] = arr[i]
    canvas = np.kron(canvas, np.ones((scale, scale), dtype=np.float32))  # nearest-neighbour upscale
    # Digits are ink on paper: draw high values dark, as in the sklearn gallery.
    Image.fromarray(((1 - canvas) * 255).round().astype(np.uint8)).save(path)  # 2-D uint8: greyscale
    return path


def save_text_image(texts: list[str], path: Path, width_chars: int = 80) -> Path:
    """Render text samples (the char-LM's "sample grid") into a PNG, one block per sample."""
    import textwrap

    from PIL import Image, ImageDraw, ImageFont

    lines: list[str] = []
    for i, text in enumerate(texts):
        lines.append(f"--- sample {i + 1} ---")
        for paragraph in text.splitlines() or [""]:
            lines.extend(textwrap.wrap(paragraph, width_chars) or [""])
    font = ImageFont.load_default()
    line_h = 14
    image = Image.new("L", (width_chars * 7 + 20, line_h * len(lines) + 20), color=255)
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(lines):
        draw.text((10, 10 + i * line_h), line.encode("ascii", "replace").decode(), fill=0, font=font)
    image.save(path)
    return path


def save_curve(curves: dict[str, list[float]], path: Path, title: str, ylabel: str = "loss") -> Path:
    """Plot each named loss against the step, raw and smoothed (moving average), with matplotlib's Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    for label, values in curves.items():
        y = np.asarray(values, dtype=np.float64)
        (line,) = ax.plot(y, alpha=0.25, linewidth=0.8)
        k = max(1, len(y) // 50)
        if len(y) >= k:
            smooth = np.convolve(y, np.ones(k) / k, mode="valid")
            ax.plot(np.arange(k - 1, len(y)), smooth, color=line.get_color(), label=label)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def save_run(out_dir: Path, name: str, preset: str, config, step: int, state_dict: dict, metrics: dict,
             extra: dict | None = None) -> dict[str, Path]:
    """Write metrics.json, model.safetensors and config.json; return the paths of all five run files."""
    from safetensors.torch import save_file

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {key: out_dir / filename for key, filename in FILES.items()}
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()}
    save_file(tensors, str(paths["checkpoint"]), metadata={"demo": name, "format": str(CHECKPOINT_FORMAT)})
    description = {
        "demo": name,
        "preset": preset,
        "step": step,
        "version": package_version(),
        "format": CHECKPOINT_FORMAT,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "config": asdict(config),
        **(extra or {}),
    }
    paths["config"].write_text(json.dumps(description, indent=2) + "\n")
    paths["metrics"].write_text(json.dumps(metrics, indent=2) + "\n")
    return paths


def read_run(out_dir: Path, name: str) -> tuple[dict, dict]:
    """(state_dict, config.json contents) of a run folder, checking that it belongs to demo `name`.

    Raises:
        RagError: the folder is not a run of this demo, or its files are missing.
    """
    from safetensors.torch import load_file

    from rag_app.errors import RagError

    out_dir = Path(out_dir)
    config_path, weights_path = out_dir / FILES["config"], out_dir / FILES["checkpoint"]
    if not config_path.is_file() or not weights_path.is_file():
        raise RagError(f"{out_dir} is not a demo run folder: it needs config.json and model.safetensors")
    description = json.loads(config_path.read_text())
    if description.get("demo") != name:
        raise RagError(f"{out_dir} holds a {description.get('demo')!r} run, not a {name!r} run")
    if description.get("format") != CHECKPOINT_FORMAT:
        raise RagError(f"{out_dir} has checkpoint format {description.get('format')}, expected {CHECKPOINT_FORMAT}")
    return load_file(str(weights_path)), description


class Budget:
    """The step numbers of a training loop: 1, 2, ... until `steps` steps are done or `max_seconds` of wall-clock
    time have passed, whichever comes first (the clock starts at the first step; at least one step always runs).

        budget = output.Budget(cfg.steps, cfg.max_seconds, progress)
        for step in budget:
            ...  # one optimiser step
            budget.report({"loss": loss})

    `report` calls `progress(step, expected_total, info)` about 100 times, where `expected_total` is `steps`, or
    fewer when the pace so far says the clock will stop training first; a run stopped by the clock ends with a
    last call `progress(done, done, info)`. `fraction()` is the share of the budget used so far, for learning-rate
    schedules that should end on time whichever limit binds.
    """

    def __init__(self, steps: int, max_seconds: float | None = None, progress=None):
        self.steps, self.max_seconds, self.progress = steps, max_seconds, progress
        self.done = 0  # steps started so far
        self.start = time.perf_counter()
        self._percent, self._reported, self._info = -1, 0, None

    def __iter__(self):
        self.start = time.perf_counter()
        while self.done < self.steps and not (self.done and self.out_of_time()):
            self.done += 1
            yield self.done
        if self.progress and self._info is not None and self._reported != self.done:
            self.progress(self.done, self.done, self._info)  # stopped by the clock: the bar ends full

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def out_of_time(self) -> bool:
        return self.max_seconds is not None and self.elapsed() >= self.max_seconds

    def fraction(self) -> float:
        """Share of the budget used before the current step: 0 at step 1, approaching 1 at the end."""
        by_steps = max(0, self.done - 1) / self.steps
        if self.max_seconds is None:
            return by_steps
        return min(1.0, max(by_steps, self.elapsed() / max(self.max_seconds, 1e-9)))

    def expected_steps(self) -> int:
        """`steps`, or the steps the clock will allow at the pace so far, if fewer."""
        elapsed = self.elapsed()
        if self.max_seconds is None or self.done == 0 or elapsed <= 0:
            return self.steps
        return max(self.done, min(self.steps, int(self.done * self.max_seconds / elapsed)))

    def report(self, info: dict) -> None:
        """Call once per step with that step's figures; forwards about 100 of them to the progress callback."""
        self._info = info
        if not self.progress:
            return
        percent = int(100 * self.fraction())
        if percent > self._percent or self.done == self.steps:
            self._percent, self._reported = percent, self.done
            self.progress(self.done, self.expected_steps(), info)


def budget_summary(cfg, steps_done: int, train_s: float) -> dict:
    """The metrics.json fields that say how training ended: which limit stopped it, after how many steps and seconds
    (and with how many torch CPU threads)."""
    import torch

    return {
        "stopped_by": "steps" if steps_done >= cfg.steps else "time",
        "steps": steps_done,
        "max_steps": cfg.steps,
        "max_seconds": cfg.max_seconds,
        "train_s": round(train_s, 2),
        "threads": torch.get_num_threads(),
    }

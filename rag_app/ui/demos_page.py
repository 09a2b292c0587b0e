"""The Demos page: train a small generative model with a progress bar, see its samples, curve and metrics.

Runs are written under `<data home>/runs/`, and the gallery reads every earlier run back with `list_runs`.
The page passes its settings to `run_demo` (data home, `demos.mnist_dir`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import streamlit as st

from rag_app.demos import DEMOS, PRESET_NAMES, list_runs, run_demo
from rag_app.ui import state

GALLERY_SIZE = 12


def flat_metrics(metrics: dict[str, Any], prefix: str = "") -> list[dict[str, Any]]:
    """Nested metrics as (metric, value) rows; only scalars and short strings are shown."""
    rows = []
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            rows.extend(flat_metrics(value, f"{name}."))
        elif isinstance(value, float):
            rows.append({"metric": name, "value": f"{value:.4g}"})
        elif isinstance(value, (int, bool)) or (isinstance(value, str) and len(value) < 80):
            rows.append({"metric": name, "value": str(value)})
    return rows


def show_run(out_dir: Path, metrics: dict[str, Any]) -> None:
    """Samples and curve side by side, the metrics below."""
    samples, curve = out_dir / "samples.png", out_dir / "curve.png"
    left, right = st.columns(2)
    if samples.is_file():
        left.image(str(samples), caption="Samples")
    if curve.is_file():
        right.image(str(curve), caption="Training curve")
    rows = flat_metrics(metrics)
    if rows:
        st.table(rows)


def train(name: str, preset: str, settings) -> None:
    bar = st.progress(0.0, text=f"Training {name} ({preset})…")

    def report(step: int, total: int, info: dict) -> None:
        text = f"step {step}/{total}"
        if isinstance(info.get("loss"), (int, float)):
            text += f" · loss {info['loss']:.4f}"
        bar.progress(min(step / max(total, 1), 1.0), text=text)

    out_dir = settings.runs_dir / f"{name}-{preset}-{time.strftime('%Y%m%d-%H%M%S')}"
    started = time.perf_counter()
    result = run_demo(name, preset, out_dir=out_dir, device=settings.device, progress=report, settings=settings)
    bar.progress(1.0, text=f"Trained {name} ({preset}) in {time.perf_counter() - started:.0f} s")
    st.session_state["demo_result"] = (str(result.out_dir), result.metrics)


def gallery(settings) -> None:
    st.subheader("Earlier runs")
    runs = list_runs(settings.runs_dir)
    if not runs:
        st.caption(f"No runs yet under {settings.runs_dir}: train one above.")
        return
    for run in runs[:GALLERY_SIZE]:
        quality = run.metrics.get("quality")
        label = f"{run.name} · {run.preset} · {run.time or run.out_dir.name}"
        if isinstance(quality, (int, float)):
            label += f" · quality {quality:.3g}"
        with st.expander(label):
            show_run(run.out_dir, run.metrics)
    if len(runs) > GALLERY_SIZE:
        st.caption(f"{len(runs) - GALLERY_SIZE} older runs are in {settings.runs_dir}.")


def render() -> None:
    st.title("Generative model demos")
    st.caption("Small PyTorch models trained on the spot. The tiny preset takes under a minute on 2 CPU cores: "
               "its training stops at a time budget if the steps take longer.")
    with state.guard("Loading the demos"):
        settings = state.load_settings()
        left, right = st.columns([2, 1])
        name = left.selectbox("Demo", DEMOS, key="demo_name")
        preset = right.radio("Preset", PRESET_NAMES, key="demo_preset", horizontal=True)
        if st.button("Train", type="primary"):
            with state.guard(f"Training {name}"):
                train(name, preset, settings)
        if latest := st.session_state.get("demo_result"):
            out_dir, metrics = latest
            st.subheader(f"Latest run: {Path(out_dir).name}")
            show_run(Path(out_dir), metrics)
        gallery(settings)


if __name__ == "__main__":
    render()

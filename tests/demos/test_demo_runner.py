"""run_demo / list_runs: the public entry point writes all five files; bad names fail with RagError."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from rag_app.demos import DEMOS, list_runs, run_demo
from rag_app.errors import RagError


@pytest.fixture
def micro_presets(monkeypatch, micro):
    """Swap each demo's tiny preset for a micro config, so run_demo itself is exercised in seconds."""
    import importlib

    for name, cfg in micro.items():
        module = importlib.import_module(f"rag_app.demos.{name}")
        monkeypatch.setitem(module.PRESETS, "tiny", cfg)


@pytest.mark.parametrize("name", DEMOS)
def test_run_demo_writes_all_five_files(name, micro_presets, demo_home):
    calls = []
    result = run_demo(name, "tiny", device="cpu", progress=lambda step, total, info: calls.append((step, total, info)))
    assert result.out_dir.parent == demo_home / "runs" and result.out_dir.name.startswith(f"{name}-tiny-")
    assert set(result.files) == {"samples", "curve", "metrics", "checkpoint", "config"}
    for path in result.files.values():
        assert path.is_file() and path.stat().st_size > 0
    assert json.loads(result.files["metrics"].read_text()) == result.metrics
    description = json.loads(result.files["config"].read_text())
    assert description["demo"] == name and description["preset"] == "tiny" and description["step"] > 0
    assert "version" in description and "config" in description
    assert calls and calls[-1][0] == calls[-1][1] and "loss" in calls[-1][2]
    assert result.metrics["stopped_by"] == "steps" and result.metrics["steps"] == result.metrics["max_steps"]
    assert description["step"] == result.metrics["steps"] and result.metrics["threads"] == 1
    if name == "charlm":
        assert result.metrics["heldout_bits_per_char"] > 0 and result.metrics["chars_per_s"] > 0
    else:
        assert 0 <= result.metrics["quality"] <= 1 and result.metrics["fd"] >= 0
        assert result.metrics["samples_per_s"] > 0
    runs = list_runs(demo_home / "runs")
    assert [(r.name, r.preset, r.out_dir) for r in runs] == [(name, "tiny", result.out_dir)]
    assert runs[0].metrics == result.metrics


def test_run_demo_honours_out_dir_and_seed(micro_presets, tmp_path):
    a = run_demo("vae", out_dir=tmp_path / "a", device="cpu", seed=3)
    b = run_demo("vae", out_dir=tmp_path / "b", device="cpu", seed=3)
    assert a.out_dir == tmp_path / "a"
    assert json.loads(a.files["config"].read_text())["config"]["seed"] == 3
    assert a.metrics["final_loss"] == b.metrics["final_loss"]  # seeded runs repeat


def test_unknown_demo_and_preset_raise_rag_error_listing_choices():
    with pytest.raises(RagError, match="vae, gan, diffusion"):
        run_demo("transformer")
    with pytest.raises(RagError, match="tiny, full"):
        run_demo("vae", preset="huge")


def test_list_runs_of_missing_folder_is_empty(tmp_path):
    assert list_runs(tmp_path / "nothing") == []


def test_loading_a_run_of_another_demo_is_refused(micro_presets, tmp_path):
    from rag_app.demos import flow

    result = run_demo("vae", out_dir=tmp_path / "v", device="cpu")
    with pytest.raises(RagError, match="'vae' run"):
        flow.load_checkpoint(result.out_dir)


def test_importing_the_demos_package_does_not_import_torch():
    code = "import sys, rag_app.demos; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("name", DEMOS)
def test_a_time_budget_stops_training_and_metrics_say_so(name, micro, monkeypatch, tmp_path):
    """Bug 4: training stops at whichever of steps or max_seconds comes first, and metrics.json records which."""
    import dataclasses
    import importlib

    module = importlib.import_module(f"rag_app.demos.{name}")
    cfg = dataclasses.replace(micro[name], steps=10**9, max_seconds=0.3)
    monkeypatch.setitem(module.PRESETS, "tiny", cfg)
    calls = []
    result = run_demo(name, "tiny", out_dir=tmp_path / "run", device="cpu", seed=1,
                      progress=lambda step, total, info: calls.append((step, total)))
    written = json.loads(result.files["metrics"].read_text())
    assert written["stopped_by"] == "time" and written["max_seconds"] == 0.3 and written["max_steps"] == 10**9
    assert 0 < written["steps"] < 10**9 and written["train_s"] >= 0.3
    assert json.loads(result.files["config"].read_text())["step"] == written["steps"]
    assert calls[-1] == (written["steps"], written["steps"])  # the progress bar ends full


def test_budget_counts_steps_and_stops_on_the_clock():
    from rag_app.demos.output import Budget

    reports = []
    budget = Budget(5, None, lambda step, total, info: reports.append((step, total)))
    for step in budget:
        budget.report({"loss": 1.0})
    assert budget.done == 5 and reports[-1] == (5, 5) and [s for s, _ in reports] == [1, 2, 3, 4, 5]
    assert Budget(5).fraction() == 0  # nothing used before the first step

    timed = Budget(10**9, 0.05)
    seen = [step for step in timed]
    assert 1 <= len(seen) < 10**9 and timed.elapsed() >= 0.05
    assert [step for step in Budget(10**9, 0.0)] == [1]  # at least one step always runs


@pytest.mark.slow
def test_run_demo_sets_torch_threads_only_while_it_runs(micro_presets, tmp_path):
    import torch

    torch.set_num_threads(2)  # the autouse fixture restores the thread count afterwards
    result = run_demo("autoencoder", out_dir=tmp_path / "t", device="cpu", threads=1)
    assert result.metrics["threads"] == 1 and torch.get_num_threads() == 2
    assert run_demo("autoencoder", out_dir=tmp_path / "u", device="cpu", threads=None).metrics["threads"] == 2

"""Each demo's page in corpus/demos states its presets' training settings as the code holds them.

The app answers questions about the demos from these pages ("What learning rate does the VAE demo use?"): a page that
is silent, or out of step with its Config, makes the answer come from another demo's page or be wrong.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

CORPUS_DEMOS = Path(__file__).resolve().parents[2] / "corpus" / "demos"
DEMOS = ["autoencoder", "vae", "gan", "diffusion", "flow", "charlm"]


def _as_written(learning_rate: float) -> str:
    """2e-3 as the pages write it (Python's repr gives 0.002); 1.5e-3 keeps its digits."""
    mantissa, exponent = f"{learning_rate:e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e-{int(exponent[1:])}" if exponent.startswith("-") else f"{mantissa}e{int(exponent)}"


def _steps(n: int) -> str:
    return f"{n:,} steps"


def test_learning_rates_are_written_as_the_pages_write_them():
    assert _as_written(2e-3) == "2e-3" and _as_written(5e-4) == "5e-4" and _as_written(1e-3) == "1e-3"
    assert _as_written(1.5e-3) == "1.5e-3"


@pytest.mark.parametrize("name", DEMOS)
def test_the_demo_page_states_each_presets_steps_and_learning_rate(name):
    demo = importlib.import_module(f"rag_app.demos.{name}")
    page = (CORPUS_DEMOS / f"{name}.md").read_text(encoding="utf-8")
    for preset, config in demo.PRESETS.items():
        assert _steps(config.steps) in page, f"{name}.md does not say the {preset} preset trains {_steps(config.steps)}"
        assert re.search(rf"learning rate of {re.escape(_as_written(config.lr))}\b", page), (
            f"{name}.md does not give the {preset} preset's learning rate {_as_written(config.lr)}")
    tiny = demo.PRESETS["tiny"]
    assert re.search(rf"\bbatch size of {tiny.batch_size}\b", page), f"{name}.md does not give the tiny preset's batch size"
    # The tiny preset's own clause names its learning rate (not only the full preset's, or the other way round).
    tiny_clause = re.search(r"[Tt]he tiny preset[^;]*", page)
    assert tiny_clause and _as_written(tiny.lr) in tiny_clause.group(), f"{name}.md: the tiny preset's learning rate"

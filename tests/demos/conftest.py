"""Demo tests: every run, scorer cache and checkpoint goes to a temp data home."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def demo_home(tmp_path, monkeypatch):
    """Point RAG_HOME (runs and the digit-scorer cache) at a temp folder, and ignore a user's MNIST folder."""
    home = tmp_path / "rag_home"
    monkeypatch.setenv("RAG_HOME", str(home))
    monkeypatch.delenv("RAG_MNIST_DIR", raising=False)
    return home


@pytest.fixture(autouse=True)
def _few_threads():
    """Tiny tensors: more threads only add scheduling overhead on a shared CI machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

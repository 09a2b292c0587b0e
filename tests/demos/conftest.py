"""Demo tests: every run, scorer cache and checkpoint goes to a temp data home."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def demo_home(tmp_path, monkeypatch):
    """Point RAG_HOME (runs and the digit-scorer cache) at a temp folder, and ignore a user's MNIST folder."""
    home = tmp_path / "rag_home"
    monkeypatch.setenv("RAG_HOME", str(home))
    monkeypatch.delenv("RAG_DEMOS__MNIST_DIR", raising=False)
    return home


@pytest.fixture(autouse=True)
def _few_threads():
    """Tiny tensors: more threads only add scheduling overhead on a shared CI machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


CORPUS = "# Generative models\n\nA generative model learns the distribution of its data. " * 30


@pytest.fixture
def tiny_corpus(tmp_path):
    """Two markdown files, one in a subfolder, standing in for <repo>/corpus."""
    folder = tmp_path / "corpus"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.md").write_text(CORPUS)
    (folder / "sub" / "b.md").write_text(CORPUS.upper())
    return folder


@pytest.fixture
def micro(tiny_corpus):
    """Micro configs: a few dozen steps of very narrow networks, so every demo trains in about a second."""
    from rag_app.demos import autoencoder, charlm, diffusion, flow, gan, vae

    return {
        "autoencoder": autoencoder.Config(channels=8, hidden=32, latent_dim=4, steps=60, batch_size=32, n_samples=64),
        "vae": vae.Config(channels=8, hidden=32, latent_dim=4, steps=60, batch_size=32, kl_warmup=10,
                          eval_z_samples=1, n_samples=64),
        "gan": gan.Config(channels=8, z_dim=8, steps=30, batch_size=16, n_samples=64),
        "diffusion": diffusion.Config(channels=8, steps=60, batch_size=32, sample_steps=5, n_samples=64),
        "flow": flow.Config(n_couplings=4, hidden=32, steps=60, batch_size=32, n_samples=64),
        "charlm": charlm.Config(block_size=16, n_layer=1, n_head=2, n_embd=16, steps=60, batch_size=8, sample_chars=20,
                                n_text_samples=2, corpus_dir=str(tiny_corpus)),
    }

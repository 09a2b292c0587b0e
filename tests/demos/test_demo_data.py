"""data.py: the seeded split of sklearn digits, ranges, and the optional MNIST idx reader."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
import torch

from rag_app.demos import data


def test_digits_split_is_fixed_and_in_range():
    digits = data.load_digits()
    assert digits.source == "sklearn-digits"
    assert digits.train.shape == (1438, 1, 8, 8) and digits.heldout.shape == (359, 1, 8, 8)
    assert digits.train.dtype == torch.float32
    assert float(digits.train.min()) == 0.0 and float(digits.train.max()) == 1.0
    levels = data.to_levels(digits.train)
    assert torch.allclose(levels.float() / 16, digits.train)  # exactly on the 17-level grid
    assert set(digits.train_labels.tolist()) == set(range(10))
    # The split never depends on a run's seed: same first held-out label every time.
    data._load_cached.cache_clear()
    again = data.load_digits()
    assert torch.equal(again.heldout, digits.heldout)


def test_signed_round_trip():
    x = torch.rand(4, 1, 8, 8)
    assert torch.allclose(data.to_unit(data.to_signed(x)), x)


def _write_idx(path, array: np.ndarray) -> None:
    header = struct.pack(">BBBB", 0, 0, 8, array.ndim) + b"".join(struct.pack(">I", d) for d in array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


def _write_mnist(folder) -> None:
    rng = np.random.default_rng(0)
    for split, n in (("train", 30), ("t10k", 20)):
        _write_idx(folder / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        _write_idx(folder / f"{split}-labels-idx1-ubyte.gz", rng.integers(0, 10, (n,)))


def test_mnist_idx_files_are_downsampled_to_8x8(tmp_path):
    _write_mnist(tmp_path)
    digits = data.load_digits(tmp_path)
    assert digits.source == "mnist"
    assert digits.train.shape == (30, 1, 8, 8) and digits.heldout.shape == (20, 1, 8, 8)
    assert 0.0 <= float(digits.train.min()) and float(digits.train.max()) <= 1.0
    assert torch.allclose(data.to_levels(digits.train).float() / 16, digits.train)


def test_missing_mnist_files_raise_rag_error(tmp_path):
    import pytest

    from rag_app.errors import RagError

    with pytest.raises(RagError, match="idx"):
        data.load_digits(str(tmp_path))


def test_the_environment_does_not_reach_data_py(tmp_path, monkeypatch):
    """data.py reads no environment: the MNIST folder comes from the settings, through run_demo."""
    _write_mnist(tmp_path)
    monkeypatch.setenv("RAG_DEMOS__MNIST_DIR", str(tmp_path))
    assert data.load_digits().source == "sklearn-digits"


@pytest.mark.slow
def test_run_demo_takes_the_mnist_folder_from_the_settings(tmp_path, monkeypatch, micro):
    import json

    from rag_app.demos import run_demo, vae
    from rag_app.settings import Settings

    (tmp_path / "mnist").mkdir()
    _write_mnist(tmp_path / "mnist")
    monkeypatch.setitem(vae.PRESETS, "tiny", micro["vae"])
    settings = Settings(home=tmp_path / "home", demos={"mnist_dir": tmp_path / "mnist"})
    result = run_demo("vae", out_dir=tmp_path / "run", device="cpu", settings=settings)
    assert json.loads(result.files["config"].read_text())["config"]["mnist_dir"] == str(tmp_path / "mnist")
    assert (tmp_path / "home" / "cache" / "digit_scorer-mnist.safetensors").is_file()  # the settings' home


def test_the_old_mnist_variable_is_an_error_naming_the_new_one(monkeypatch, tmp_path):
    import pytest

    from rag_app.demos import run_demo
    from rag_app.errors import RagError

    monkeypatch.setenv("RAG_MNIST_DIR", str(tmp_path))
    with pytest.raises(RagError, match="RAG_DEMOS__MNIST_DIR"):
        run_demo("vae", device="cpu")

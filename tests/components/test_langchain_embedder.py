"""`RAG(embedder=<LangChain Embeddings>)`: the component adapter, with LangChain's own fake embeddings."""

from __future__ import annotations

import numpy as np
import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding, Embeddings


class Unnormalised(Embeddings):
    """Bag-of-letters vectors, deliberately not unit length, with a model name like real integrations have."""

    model = "letters-v1"

    def embed_documents(self, texts):
        return [self.embed_query(t) for t in texts]

    def embed_query(self, text):
        counts = [0.0] * 26
        for ch in text.lower():
            if "a" <= ch <= "z":
                counts[ord(ch) - 97] += 3.0
        return counts


def test_a_langchain_embeddings_becomes_our_embedder_with_a_recorded_fingerprint(test_settings, tmp_path):
    from rag_app.api import RAG
    from rag_app.components.embedder import Embedder
    from rag_app.components.store import EMBEDDER_KEY, list_collections

    rag = RAG(test_settings, embedder=DeterministicFakeEmbedding(size=24), **{"retrieve.mode": "dense"})
    assert isinstance(rag.embedder, Embedder)
    assert rag.embedder.name == "langchain:langchain_core.embeddings.fake.DeterministicFakeEmbedding"
    assert rag.embedder.dim == 24 and rag.embedder.fingerprint.endswith("|dim=24")
    (tmp_path / "a.md").write_text("# Alpha\n\nAlpha particles are helium nuclei.\n")
    (tmp_path / "b.md").write_text("# Beta\n\nBeta decay emits an electron.\n")
    assert rag.ingest([tmp_path]).chunks_written == 2
    [info] = list_collections(test_settings)
    assert info.embedder == rag.embedder.fingerprint
    assert (rag.store()._collection.metadata or {})[EMBEDDER_KEY] == rag.embedder.fingerprint
    # Deterministic fake vectors carry no meaning, but the same text maps to the same vector.
    [hit] = rag.retrieve("Alpha\n\nAlpha particles are helium nuclei.", k=1)
    assert hit.metadata["source"] == "a.md" and hit.score == pytest.approx(1.0, abs=1e-5)


def test_another_langchain_model_is_refused_on_the_same_collection(test_settings, tmp_path):
    from rag_app.api import RAG
    from rag_app.errors import EmbedderMismatchError

    (tmp_path / "a.md").write_text("Some text.\n")
    RAG(test_settings, embedder=DeterministicFakeEmbedding(size=24)).ingest([tmp_path])
    with pytest.raises(EmbedderMismatchError, match="dim=24"):
        RAG(test_settings, embedder=DeterministicFakeEmbedding(size=12)).ingest([tmp_path])


def test_vectors_are_unit_length_and_queries_use_embed_query():
    from rag_app.components.langchain_embedder import LangChainEmbedder

    embedder = LangChainEmbedder(Unnormalised())
    assert embedder.name == f"langchain:{__name__}.Unnormalised:letters-v1"
    vectors = embedder.embed(["abc", "zzz", "123"])
    assert vectors.shape == (3, 26) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0)
    assert vectors[2, 0] == 1.0  # no letters: a zero vector becomes a valid unit vector
    assert np.allclose(embedder.embed_query("abc"), vectors[0])


def test_token_estimate_and_explicit_sizing():
    from rag_app.components.langchain_embedder import LangChainEmbedder, estimate_tokens

    assert estimate_tokens("one two, three") == 4  # words and punctuation
    assert estimate_tokens("reparameterisation") == 5  # characters / 4, rounded up
    embedder = LangChainEmbedder(Unnormalised(), name="letters", dim=26, max_tokens=64, count_tokens=len)
    assert embedder.fingerprint == "letters|dim=26" and embedder.max_chunk_tokens == 64
    assert embedder.count_tokens("abcd") == 4


def test_our_embeddings_round_trip_unwrapped(rag):
    from rag_app.api import RAG

    again = RAG(rag.settings, embedder=rag.as_embeddings())
    assert again.embedder is rag.embedder


def test_an_object_without_the_methods_is_refused():
    from rag_app.components.langchain_embedder import LangChainEmbedder
    from rag_app.errors import RagError

    with pytest.raises(RagError, match="embed_documents"):
        LangChainEmbedder(object())

"""The `openai` embedder mode: POST {base}/embeddings, batched, recorded in the collection fingerprint.

Fast tests run a stand-in embeddings server on loopback (the OpenAI shape, vectors from the fake embedder, rows sent
back out of order with their `index`). The same client against real servers: tests/components/test_openai_server.py.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from rag_app.components.embedder import EMBEDDER_BACKENDS, FakeEmbedder, OpenAIEmbedder, get_embedder
from rag_app.errors import RagError
from rag_app.settings import FAKE_EMBEDDER_MIN_RELEVANCE, Settings

_REFERENCE = FakeEmbedder(dim=48)


class _Embeddings(BaseHTTPRequestHandler):
    requests: list[dict] = []

    def do_POST(self):  # noqa: N802 - http.server API
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
        if body["model"] != "mini":
            self._send(404, {"error": {"message": f"model {body['model']} not found"}})
            return
        vectors = _REFERENCE.embed(body["input"]) * 3.0  # not unit length: the client normalises
        rows = [{"object": "embedding", "index": i, "embedding": v.tolist()} for i, v in enumerate(vectors)]
        self._send(200, {"object": "list", "model": "mini", "data": rows[::-1]})  # out of order, with indexes

    def do_GET(self):  # noqa: N802
        self._send(200, {"object": "list", "data": [{"id": "mini", "object": "model"}]})

    def _send(self, status: int, payload: dict) -> None:
        raw = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args):
        pass


@pytest.fixture
def embeddings_server():
    _Embeddings.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Embeddings)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_batches_keep_input_order_and_unit_length(embeddings_server):
    texts = [f"text number {i} about topic {i % 3}" for i in range(7)]
    embedder = OpenAIEmbedder(embeddings_server, "mini", api_key="k", batch_size=3)
    vectors = embedder.embed(texts)
    assert vectors.shape == (7, 48) and vectors.dtype == np.float32
    assert np.allclose(vectors, _REFERENCE.embed(texts), atol=1e-6)
    sent = _Embeddings.requests
    assert [len(r["body"]["input"]) for r in sent] == [3, 3, 1]
    assert {r["path"] for r in sent} == {"/v1/embeddings"} and {r["auth"] for r in sent} == {"Bearer k"}
    assert np.allclose(embedder.embed_query(texts[2]), vectors[2], atol=1e-6)


def test_settings_build_it_without_a_call_and_the_fingerprint_names_model_and_dim(embeddings_server, tmp_path):
    assert EMBEDDER_BACKENDS["openai"] is OpenAIEmbedder
    settings = Settings(home=tmp_path, embedder={"mode": "openai", "base_url": embeddings_server, "model": "mini"})
    embedder = get_embedder(settings)
    assert isinstance(embedder, OpenAIEmbedder) and _Embeddings.requests == []
    assert embedder.fingerprint == "openai:mini|dim=48"  # one probe request measures the dimension
    assert len(_Embeddings.requests) == 1


def test_settings_need_a_url_and_a_model_name(tmp_path):
    with pytest.raises(RagError, match="RAG_EMBEDDER__BASE_URL"):
        get_embedder(Settings(home=tmp_path, embedder={"mode": "openai", "model": "mini"}))
    with pytest.raises(RagError, match="RAG_EMBEDDER__MODEL"):
        get_embedder(Settings(home=tmp_path, embedder={"mode": "openai", "base_url": "http://127.0.0.1:9/v1"}))


def test_rag_ingests_and_answers_through_the_server_and_the_collection_remembers_it(embeddings_server, tmp_path):
    from rag_app.api import RAG

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "trains.md").write_text("# Trains\n\nThe first Shinkansen line opened in 1964 between Tokyo and Osaka.\n")
    (docs / "bread.md").write_text("# Bread\n\nSourdough bread is leavened by a starter of wild yeast.\n")
    served = {"mode": "openai", "base_url": embeddings_server, "model": "mini"}
    app = RAG(Settings(home=tmp_path / "home", embedder=served, llm={"mode": "scripted"}))
    assert app.ingest([docs]).ok
    answer = app.ask("When did the first Shinkansen line open?")
    assert not answer.refused and answer.cited_sources[0].source == "trains.md"
    # The collection records the server's model: a local embedder is refused, not silently mixed in.
    local = RAG(Settings(home=tmp_path / "home", embedder={"mode": "fake", "fake_dim": 48}, llm={"mode": "scripted"}))
    with pytest.raises(RagError, match="openai:mini"):
        local.ask("When did the first Shinkansen line open?")


def test_errors_name_the_server(embeddings_server):
    with pytest.raises(RagError) as caught:
        OpenAIEmbedder(embeddings_server, "nope").embed(["x"])
    assert "does not serve model 'nope'" in str(caught.value) and "RAG_EMBEDDER__MODEL" in str(caught.value)
    with pytest.raises(RagError) as caught:
        OpenAIEmbedder("http://127.0.0.1:9/v1", "mini", timeout_s=2).embed(["x"])
    assert "the embedding server at http://127.0.0.1:9/v1 is unreachable" in str(caught.value)
    assert "RAG_EMBEDDER__BASE_URL" in str(caught.value)


# -- against a real server: our own `rag serve` (its /v1/embeddings), once that branch is in --------------------------
def _serve_missing() -> bool:
    import importlib.util

    return importlib.util.find_spec("rag_app.serve") is None


@pytest.mark.slow
@pytest.mark.skipif(_serve_missing(), reason="`rag serve` (rag_app/serve/, branch serve) is not merged yet")
def test_against_rag_serve_embeddings(tmp_path):
    """`rag serve` in a subprocess (test profile: the fake embedder of dimension 64) is the embeddings server; our
    client gets its vectors, and a RAG ingests and answers through it."""
    import os
    import socket
    import subprocess
    import sys
    import time
    import urllib.request
    from pathlib import Path

    from rag_app.api import RAG

    repo = Path(__file__).resolve().parents[2]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env.update(RAG_HOME=str(tmp_path / "served-home"), RAG_PROFILE="test", PYTHONPATH=str(repo), HF_HUB_OFFLINE="1")
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "rag_app", "serve", "--port", str(port)], cwd=repo, env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()[-2000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2) as ready:
                    if ready.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "rag serve was not ready within 120 s"
            time.sleep(0.2)
        base = f"http://127.0.0.1:{port}/v1"
        texts = ["The first Shinkansen line opened in 1964.", "Sourdough rises for hours.", "short"]
        vectors = OpenAIEmbedder(base, "rag", batch_size=2).embed(texts)
        assert np.allclose(vectors, FakeEmbedder(dim=64).embed(texts), atol=1e-6)

        docs = tmp_path / "docs"
        docs.mkdir()
        (docs / "trains.md").write_text("# Trains\n\nThe first Shinkansen line opened in 1964 between Tokyo and Osaka.\n")
        (docs / "bread.md").write_text("# Bread\n\nSourdough bread is leavened by a starter of wild yeast.\n")
        # The served vectors are the fake embedder's, so the refusal threshold is the one calibrated for it.
        app = RAG(Settings(home=tmp_path / "home", embedder={"mode": "openai", "base_url": base, "model": "rag"},
                           llm={"mode": "scripted"}, answer={"min_relevance": FAKE_EMBEDDER_MIN_RELEVANCE}))
        assert app.ingest([docs]).ok and app.embedder.fingerprint == "openai:rag|dim=64"
        answer = app.ask("When did the first Shinkansen line open?")
        assert not answer.refused and answer.cited_sources[0].source == "trains.md"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


# -- against a second real implementation: llama.cpp's server (llama-cpp-python), where one is installed ---------------
def _llama_cpp_python() -> str | None:
    """An interpreter with `llama_cpp.server`: $LLAMA_CPP_PYTHON (e.g. a separate virtualenv), or this one."""
    import importlib.util
    import os
    import sys

    given = os.environ.get("LLAMA_CPP_PYTHON")
    if given:
        return given
    return sys.executable if importlib.util.find_spec("llama_cpp") is not None else None


def _mean_pooled_gguf(target):
    """The packaged SmolLM2 GGUF with `llama.pooling_type = mean` added, so llama.cpp returns one vector per text
    (an LM has no pooling of its own: without it the server answers one vector per token)."""
    import gguf
    from gguf.scripts.gguf_new_metadata import MetadataDetails, copy_with_new_metadata, get_field_data

    from rag_app.components.packaged_models import packaged_llm
    from rag_app.settings import PACKAGED_LLM

    reader = gguf.GGUFReader(packaged_llm(PACKAGED_LLM).part_paths()[0], "r")
    arch = get_field_data(reader, gguf.Keys.General.ARCHITECTURE)
    writer = gguf.GGUFWriter(target, arch=arch, endianess=reader.endianess)
    mean = MetadataDetails(gguf.GGUFValueType.UINT32, 1)  # LLAMA_POOLING_TYPE_MEAN
    copy_with_new_metadata(reader, writer, {f"{arch}.pooling_type": mean}, [])
    return target


@pytest.mark.integration
@pytest.mark.skipif(_llama_cpp_python() is None,
                    reason="llama-cpp-python[server] is not installed (set LLAMA_CPP_PYTHON to a Python that has it)")
def test_against_llama_cpp_server_embeddings(tmp_path):
    import socket
    import subprocess
    import time
    import urllib.request

    from rag_app.api import RAG

    model = _mean_pooled_gguf(tmp_path / "smollm2-mean.gguf")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = (tmp_path / "llama-server.log").open("wb")
    proc = subprocess.Popen([_llama_cpp_python(), "-m", "llama_cpp.server", "--model", str(model), "--embedding",
                             "true", "--model_alias", "smollm2-embed", "--host", "127.0.0.1", "--port", str(port)],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}/v1"
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, (tmp_path / "llama-server.log").read_text()[-2000:]
            try:
                with urllib.request.urlopen(base + "/models", timeout=2):
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the llama.cpp server did not start within 120 s"
            time.sleep(0.2)
        texts = ["The first Shinkansen line opened in 1964.", "Sourdough rises for hours.", "short"]
        embedder = OpenAIEmbedder(base, "smollm2-embed", batch_size=2)
        vectors = embedder.embed(texts)
        assert vectors.shape == (3, 576) and np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
        assert embedder.fingerprint == "openai:smollm2-embed|dim=576"
        assert np.allclose(embedder.embed_query(texts[1]), vectors[1], atol=1e-3)  # batched or alone: one vector

        docs = tmp_path / "docs"
        docs.mkdir()
        (docs / "trains.md").write_text("# Trains\n\nThe first Shinkansen line opened in 1964 between Tokyo and Osaka.\n")
        (docs / "bread.md").write_text("# Bread\n\nSourdough bread is leavened by a starter of wild yeast.\n")
        app = RAG(Settings(home=tmp_path / "home", llm={"mode": "scripted"},
                           embedder={"mode": "openai", "base_url": base, "model": "smollm2-embed"}))
        assert app.ingest([docs]).ok
        answer = app.ask("When did the first Shinkansen line open?")
        assert not answer.refused and answer.cited_sources[0].source == "trains.md"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()

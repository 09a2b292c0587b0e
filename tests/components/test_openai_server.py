"""The `openai` LM mode against a real OpenAI-compatible server: `transformers serve`, in a subprocess, offline.

The server serves the packaged SmolLM2-135M-Instruct, converted by our own code under the data home's `cache/llm/`
(the folder the in-process LM loads). It answers chat completions, streamed and not, and ignores `logprobs`, so
extractive answers take the span-prompt-and-snap path. One test kills the server mid-session and restarts it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from rag_app.errors import RagError

pytestmark = pytest.mark.integration

DOCS = {
    "volcanoes.md": "# Volcanoes\n\nMount Etna is an active volcano on the east coast of Sicily. It is the tallest "
                    "active volcano in Europe outside the Caucasus, about 3,357 metres high.\n",
    "bread.md": "# Bread\n\nSourdough bread is leavened by a starter of wild yeast and lactic acid bacteria. The dough "
                "usually rises for eight to twelve hours before baking.\n",
    "trains.md": "# Trains\n\nThe Shinkansen is a network of high-speed railway lines in Japan. The first line opened "
                 "in 1964 between Tokyo and Osaka.\n",
}
QUESTION = "In which year did the first Shinkansen line open?"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class TransformersServe:
    """`transformers serve <folder>` on a loopback port, offline; `start` waits for /health and returns the seconds
    it took."""

    def __init__(self, model_dir: Path, port: int, log: Path):
        self.model_dir, self.port, self.log = model_dir, port, log
        self.proc: subprocess.Popen | None = None
        self.base_url = f"http://127.0.0.1:{port}/v1"

    def start(self, limit_s: float = 180.0) -> float:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        started = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "transformers.cli.transformers", "serve", str(self.model_dir),
             "--host", "127.0.0.1", "--port", str(self.port)],
            stdout=self.log.open("a"), stderr=subprocess.STDOUT, env=env)
        while time.perf_counter() - started < limit_s:
            if self.proc.poll() is not None:
                raise AssertionError(f"transformers serve exited with {self.proc.returncode}: "
                                     f"{self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2):
                    return time.perf_counter() - started
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise AssertionError(f"transformers serve did not answer /health within {limit_s:.0f} s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        self.proc = None


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(server, ingested docs folder, data home); the server is running at the start of each test."""
    from rag_app.components.packaged_models import converted_packaged_model

    root = tmp_path_factory.mktemp("served")
    model_dir = converted_packaged_model(root / "home" / "cache")
    server = TransformersServe(model_dir, _free_port(), root / "transformers-serve.log")
    startup_s = server.start()
    print(f"\ntransformers serve start-up: {startup_s:.1f} s")  # shown with -s; figures live in docs/benchmarks.md
    docs = root / "docs"
    docs.mkdir()
    for name, text in DOCS.items():
        (docs / name).write_text(text, encoding="utf-8")
    yield server, docs, root / "home"
    server.stop()


@pytest.fixture
def server(served):
    server = served[0]
    if server.proc is None:  # a test stopped it
        server.start()
    return server


def _rag(served, **answer):
    from rag_app.api import RAG
    from rag_app.settings import Settings

    server, docs, home = served
    llm = {"mode": "openai", "base_url": server.base_url, "model": str(server.model_dir), "timeout_s": 60}
    app = RAG(Settings(home=home, llm=llm, answer=answer))
    assert app.ingest([docs]).ok
    return app


def test_extractive_answer_over_http_is_grounded_and_cited(served, server):
    answer = _rag(served).ask(QUESTION)
    assert not answer.refused and answer.extra["strategy"] == "extractive"
    assert answer.short == "1964" and not answer.fallback
    assert [s.source for s in answer.cited_sources] == ["trains.md"]
    n = answer.cited_sources[0].n
    assert answer.text.startswith(f"1964 [{n}].") and "opened in 1964 between Tokyo and Osaka" in answer.text
    assert answer.model == f"openai:{server.model_dir}"


def test_generative_answer_streams_and_passes_the_support_check(served, server):
    from rag_app.services.answer import Answer

    items = list(_rag(served, strategy="generative").stream(QUESTION))
    answer = items[-1]
    assert isinstance(answer, Answer) and not answer.refused and not answer.fallback
    pieces = items[:-1]
    assert len(pieces) > 3 and all(isinstance(p, str) for p in pieces)  # token by token, not one block
    assert "1964" in answer.text and [s.source for s in answer.cited_sources] == ["trains.md"]
    assert f"[{answer.cited_sources[0].n}]" in answer.text


def test_a_model_the_server_does_not_serve_is_named(server):
    from rag_app.components.llm import OpenAILLM

    with pytest.raises(RagError) as caught:
        OpenAILLM(server.base_url, "no-such-model").generate([{"role": "user", "content": "hi"}])
    message = str(caught.value)
    assert "does not serve model 'no-such-model'" in message and str(server.model_dir) in message
    assert "RAG_LLM__MODEL" in message and server.base_url in message


def test_server_killed_then_restarted(served, server):
    app = _rag(served)
    assert app.ask(QUESTION).short == "1964"
    server.stop()
    with pytest.raises(RagError) as caught:
        app.ask(QUESTION)
    assert server.base_url in str(caught.value) and "unreachable" in str(caught.value)
    server.start()
    assert app.ask(QUESTION).short == "1964"  # the same RAG object recovers once the server is back

"""Who may call: a key guards every /v1 route (401 otherwise), a non-loopback bind without a key is refused at
start-up, and while the models load the API says 503 with the reason (health stays 200)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from serve_support import REPO, Server, serve_env

KEY = "s3cret-key-for-tests"


@pytest.fixture(scope="module")
def keyed(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("keyed") / "home", RAG_SERVE__API_KEY=KEY).start()
    yield srv
    srv.stop()


def test_every_v1_route_needs_the_key(keyed):
    with keyed.client() as http:
        for headers in ({}, {"Authorization": "Bearer wrong-key"}, {"Authorization": f"Basic {KEY}"},
                        {"Authorization": f"Bearer {KEY}x"}):
            for method, path in (("GET", "/v1/models"), ("POST", "/v1/chat/completions"), ("POST", "/v1/ingest"),
                                 ("POST", "/v1/embeddings"), ("GET", "/v1/collections")):
                response = http.request(method, path, headers=headers, content=b"{not json")
                assert response.status_code == 401, (method, path, headers, response.text)
                assert response.json()["error"]["type"] == "authentication_error"
                assert response.headers["www-authenticate"] == "Bearer"
        assert http.get("/health").status_code == 200 and http.get("/ready").status_code == 200
        ok = http.get("/v1/models", headers={"Authorization": f"Bearer {KEY}"})
        assert ok.status_code == 200 and "rag:default" in [m["id"] for m in ok.json()["data"]]


def test_the_openai_client_with_the_key_works_and_without_it_fails(keyed):
    openai = pytest.importorskip("openai")
    good = openai.OpenAI(base_url=keyed.base, api_key=KEY, max_retries=0)
    completion = good.chat.completions.create(model="rag:default",
                                              messages=[{"role": "user", "content": "What is a GAN?"}])
    assert completion.model_extra["sources"]
    bad = openai.OpenAI(base_url=keyed.base, api_key="guess", max_retries=0)
    with pytest.raises(openai.AuthenticationError, match="wrong API key"):
        bad.models.list()


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.7", "example.org"])
def test_a_non_loopback_bind_without_a_key_is_refused(tmp_path, host):
    done = subprocess.run([sys.executable, "-m", "rag_app", "serve", "--host", host, "--port", "1"],
                          cwd=REPO, env=serve_env(tmp_path / "home"), capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rag: error: refusing to serve on") and host in lines[0]
    assert "RAG_SERVE__API_KEY" in lines[0]


def test_loopback_hosts_are_recognised():
    from rag_app.serve.security import check_bind, is_loopback

    assert all(is_loopback(h) for h in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "10.0.0.1", "example.org"))
    check_bind("0.0.0.0", "a-key")  # with a key any address is allowed


def test_while_the_models_load_the_api_says_503_with_the_reason(test_settings):
    """In-process (the loading window of a real server is too short to hit): nothing loaded yet."""
    from fastapi.testclient import TestClient

    from rag_app.api import RAG
    from rag_app.serve import create_app

    app = create_app(RAG(test_settings), load=False)
    with TestClient(app) as http:
        assert http.get("/health").status_code == 200
        ready = http.get("/ready")
        assert ready.status_code == 503 and ready.json()["status"] == "loading"
        response = http.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]})
        assert response.status_code == 503 and "starting" in response.json()["error"]["message"]
        assert response.headers["retry-after"] == "2"
        app.state.serve.start_loading()
        assert app.state.serve.ready.wait(60)
        assert http.get("/ready").status_code == 200
        assert http.get("/v1/models").status_code == 200

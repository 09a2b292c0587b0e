"""The README's MCP examples work as written: the client configuration (`mcpServers`) spawns a server that lists
the tools and answers, and the Python snippet prints a cited answer (our interpreter for the `rag` script, a
temporary data home, the test profile)."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from mcp_support import REPO, Client, data, serve_env, stdio_transport


def mcp_section() -> str:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    return readme.split("### Use your documents from an MCP client\n", 1)[1].split("\n### ", 1)[0]


@pytest.mark.slow
def test_the_client_configuration_spawns_a_server_that_answers(tmp_path):
    (config,) = re.findall(r"```json\n(.*?)```", mcp_section(), re.DOTALL)
    (server,) = json.loads(config)["mcpServers"].values()
    # `rag mcp` with only RAG_HOME set: here through our interpreter (the path in the snippet is an example).
    assert server["command"].endswith("/.venv/bin/rag") and server["args"] == ["mcp"]
    assert set(server["env"]) == {"RAG_HOME"}
    client = Client(stdio_transport(tmp_path / "home"))
    try:
        assert set(client.tools()) == {"search_documents", "ask", "list_collections", "list_documents"}
        answer = data(client.call("ask", {"question": "What is a VAE?"}))
        assert "[1]" in answer["answer"] and answer["sources"][0]["source"] == "vae.md"
    finally:
        client.close()


@pytest.mark.slow
def test_the_python_snippet_prints_a_cited_answer(tmp_path):
    (snippet,) = re.findall(r"```python\n(.*?)```", mcp_section(), re.DOTALL)
    spawn = 'command="rag", args=["mcp"], env={"RAG_HOME": "/home/me/rag-data"}'
    assert spawn in snippet
    env = serve_env(tmp_path / "home")
    snippet = snippet.replace(spawn, f'command={sys.executable!r}, args=["-m", "rag_app", "mcp"], env={env!r}')
    done = subprocess.run([sys.executable, "-c", snippet], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert "[1]" in lines[0] and "variational autoencoder" in lines[0].lower()
    assert lines[1].startswith("1 vae.md lines ") and lines[1].endswith(" cited")

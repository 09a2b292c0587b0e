"""The README's `rag serve` examples run as written: the shell block (start, wait, curl chat, upload, models),
then the openai-client block, against the server the shell block started (test profile, a free port)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys

import pytest
from serve_support import REPO, free_port, serve_env


def serve_snippets() -> tuple[str, str]:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("### HTTP API (`rag serve`)\n", 1)[1].split("\n#", 1)[0]
    (shell,) = re.findall(r"```bash\n(.*?)```", section, re.S)
    (python,) = re.findall(r"```python\n(.*?)```", section, re.S)
    return shell, python


def json_values(text: str) -> list:
    """The JSON documents printed one after another (curl adds no newline)."""
    decoder, values, at = json.JSONDecoder(), [], 0
    while at < len(text.rstrip()):
        value, at = decoder.raw_decode(text, at)
        values.append(value)
        while at < len(text) and text[at].isspace():
            at += 1
    return values


@pytest.mark.slow
def test_the_readme_serve_examples_run_as_written(tmp_path):
    shell, python = serve_snippets()
    port = str(free_port())
    # Our interpreter instead of the `rag` script (which would import the installed code), and a free port.
    shell = re.sub(r"^rag ", f"{sys.executable} -m rag_app ", shell, flags=re.M).replace("8800", port)
    python = python.replace("8800", port)
    script = (f"trap 'kill %1 2>/dev/null' EXIT\nset -e\n{shell}\necho '<<python>>'\n"
              f"{sys.executable} - <<'PY'\n{python}PY\n")
    proc = subprocess.Popen(["bash", "-c", script], cwd=REPO, env=serve_env(tmp_path / "home", RAG_SERVE__PORT=port), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, err[-3000:]
    curl, printed = out.split("<<python>>\n")
    chat, job, models = json_values(curl)
    assert "[1]" in chat["choices"][0]["message"]["content"] and chat["sources"][0]["source"] == "vae.md"
    assert job["id"].startswith("job-") and job["files"] == ["gans.md"] and job["collection"] == "notes"
    assert "rag:default" in {m["id"] for m in models["data"]}
    lines = printed.splitlines()
    assert lines[0] == chat["choices"][0]["message"]["content"]
    assert lines[1].startswith("1 vae.md ") and "refused: False" in lines
    assert lines[-1].strip() == lines[0]  # the streamed answer is the same answer

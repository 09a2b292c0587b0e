"""`rag serve` for real: a subprocess on a free loopback port, waited for until GET /ready answers 200."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
FIXTURES_DIR = REPO / "tests" / "fixtures" / "docs"
sys.path.insert(0, str(REPO / "tests" / "reliability"))
from reliability_support import ChromaServer, free_port, make_corpus  # noqa: E402,F401 - re-exported


def serve_env(home: Path, profile: str | None = "test", **extra: str) -> dict[str, str]:
    """The environment of a `python -m rag_app serve` child: only our RAG_ variables, offline."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env.update({"RAG_HOME": str(home), "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1",
                "ANONYMIZED_TELEMETRY": "False", "PYTHONUNBUFFERED": "1"})
    if profile:
        env["RAG_PROFILE"] = profile
    env.update(extra)
    return env


class Server:
    """One `rag serve` process; `url` is its root, `base` its OpenAI base URL (…/v1)."""

    def __init__(self, home: Path, *args: str, profile: str | None = "test", **env: str):
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.base = self.url + "/v1"
        self.args = args
        self.env = serve_env(home, profile, **env)
        self.log = home.parent / f"serve-{self.port}.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 240) -> "Server":
        self.home.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "rag_app", "serve", "--port", str(self.port),
                                          *self.args], cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"rag serve exited with {self.proc.returncode}:\n{self.output()}")
            try:
                if httpx.get(self.url + "/ready", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"rag serve was not ready within {timeout} s:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=20)
        self.proc = None

    def client(self, **headers: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60, headers=headers)


def wait_for_job(client: httpx.Client, job_id: str, timeout: float = 120) -> dict:
    """Poll GET /v1/jobs/{id} until the job has finished; returns its last state."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} still {job['status']} after {timeout} s: {job}")

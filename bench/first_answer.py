"""A new user's first question in a freshly started app, in a real browser: seconds from the page being ready (the
chat input drawn) to the first answer text and to the finished answer, with and without `rag prepare` run first.

    python bench/first_answer.py [--question "..."] [--json out.json]

Each case starts from an empty data home: "fresh" starts the app directly (the bundled corpus is indexed and the
models converted when the page first loads); "prepared" runs `rag prepare` first (what `make run` does) and times
it apart. Real default models; Debian's chromium through Playwright; everything on loopback.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def first_answer(home: Path, question: str) -> dict:
    from playwright.sync_api import sync_playwright

    port = free_port()
    env = {**os.environ, "RAG_HOME": str(home), "PYTHONPATH": str(REPO)}
    env.pop("RAG_PROFILE", None)
    log = open(home.parent / f"streamlit-{home.name}.log", "wb")
    server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(REPO / "streamlit_app.py"),
                               "--server.headless", "true", "--server.address", "127.0.0.1", "--server.port",
                               str(port), "--browser.gatherUsageStats", "false"], cwd=REPO, env=env, stdout=log,
                              stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        started = time.perf_counter()
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2):
                    break
            except OSError:
                if time.perf_counter() - started > 120:
                    raise RuntimeError("streamlit did not start") from None
                time.sleep(0.3)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            page = browser.new_page()
            page.goto(url, timeout=60_000)
            loaded = time.perf_counter()
            chat = page.get_by_test_id("stChatInputTextArea")
            chat.wait_for(timeout=600_000)
            ready = time.perf_counter()
            chat.fill(question)
            chat.press("Enter")
            asked = time.perf_counter()
            messages = page.get_by_test_id("stChatMessage")
            messages.nth(1).get_by_test_id("stMarkdownContainer").first.wait_for(timeout=600_000)
            first_text = time.perf_counter()
            messages.nth(1).get_by_test_id("stExpander").first.wait_for(timeout=600_000)
            done = time.perf_counter()
            text = messages.nth(1).inner_text()[:300]
            browser.close()
        return {"page_loaded_s": round(loaded - started, 2), "ready_after_load_s": round(ready - loaded, 2),
                "first_text_s": round(first_text - asked, 2), "answer_done_s": round(done - asked, 2),
                "answer": text}
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--question", default="What does a variational autoencoder learn?")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = {"cpu": subprocess.run(["lscpu"], capture_output=True, text=True).stdout.split("Flags:")[0][-400:],
               "load_before": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="first-answer-") as tmp:
        fresh = Path(tmp) / "fresh"
        results["fresh"] = first_answer(fresh, args.question)
        prepared = Path(tmp) / "prepared"
        env = {**os.environ, "RAG_HOME": str(prepared), "PYTHONPATH": str(REPO)}
        env.pop("RAG_PROFILE", None)
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "rag_app", "prepare"], env=env, cwd=REPO, check=True)
        results["prepare_s"] = round(time.perf_counter() - started, 2)
        results["prepared"] = first_answer(prepared, args.question)
    results["load_after"] = os.getloadavg()
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

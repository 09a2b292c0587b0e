"""One real-browser test: `streamlit run` on a free loopback port, driven by Debian's headless Chromium.

Needs `/usr/bin/chromium` (`apt-get install chromium`; `make browser-deps` does it) and Playwright's Python package.
Playwright never downloads a browser here: it is pointed at the system executable.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("RAG_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
START_TIMEOUT_S = 120
ANSWER_TIMEOUT_MS = 240_000  # first start ingests the bundled corpus; the test machine is shared

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing: install Debian's chromium "
                       "(`make browser-deps`, or `apt-get install chromium`) to run the browser test"),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_served(url: str, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"streamlit exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"streamlit did not serve {url} within {START_TIMEOUT_S} s:\n{log.read_text()[-3000:]}")


@contextlib.contextmanager
def serve(tmp_path: Path):
    """The app on a free loopback port, on the fakes, with its data under tmp_path/rag_home."""
    port = free_port()
    env = {**os.environ, "RAG_PROFILE": "test", "RAG_HOME": str(tmp_path / "rag_home")}
    log = tmp_path / "streamlit.log"
    with open(log, "wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(REPO / "streamlit_app.py"), "--server.headless", "true",
             "--server.address", "127.0.0.1", "--server.port", str(port), "--browser.gatherUsageStats", "false"],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_served(url, server, log)
        yield url, log
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.fixture
def served_app(tmp_path):
    """The app, whose first start ingests the bundled corpus."""
    with serve(tmp_path) as served:
        yield served


@pytest.fixture
def served_pdf_app(tmp_path):
    """The app over a default collection holding one PDF, ingested by `rag ingest` before the server starts."""
    folder = tmp_path / "pdfs"
    folder.mkdir()
    shutil.copy(REPO / "tests" / "fixtures" / "docs" / "orchard_survey.pdf", folder)
    env = {**os.environ, "RAG_PROFILE": "test", "RAG_HOME": str(tmp_path / "rag_home"), "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "rag_app", "ingest", str(folder)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    with serve(tmp_path) as served:
        yield served


def launch(sync_api, playwright):
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)


def test_ask_in_a_real_browser(served_app, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")
    url, log = served_app

    with sync_api.sync_playwright() as playwright:
        browser = launch(sync_api, playwright)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(url, timeout=60_000)
            chat = page.get_by_test_id("stChatInputTextArea")
            chat.wait_for(timeout=ANSWER_TIMEOUT_MS)  # drawn after the first-start ingest
            chat.fill("What does a variational autoencoder learn?")
            chat.press("Enter")

            assistant = page.get_by_test_id("stChatMessage").filter(has=page.get_by_test_id("stExpander"))
            assistant.first.wait_for(timeout=ANSWER_TIMEOUT_MS)
            card = assistant.first.get_by_test_id("stExpander").first
            card_title = card.locator("summary").inner_text()
            number = re.search(r"\[(\d+)\] \S+\.md — ", card_title)
            assert number and card_title.rstrip().endswith("cited"), card_title
            answer_text = assistant.first.get_by_test_id("stMarkdownContainer").first.inner_text()
            assert f"[{number.group(1)}]" in answer_text, answer_text  # the answer cites the card

            card.locator("summary").click()
            card.locator("mark").first.wait_for(timeout=30_000)  # the cited span, highlighted
            page.wait_for_timeout(800)  # let the expander finish opening
            page.screenshot(path=str(tmp_path / "chat.png"), full_page=True)
            assert page.get_by_test_id("stException").count() == 0
        finally:
            browser.close()
    assert (tmp_path / "chat.png").stat().st_size > 10_000
    assert "Traceback" not in log.read_text()


def test_the_cited_pdf_page_in_a_real_browser(served_pdf_app, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")
    url, log = served_pdf_app

    with sync_api.sync_playwright() as playwright:
        browser = launch(sync_api, playwright)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1400})
            page.goto(url, timeout=60_000)
            chat = page.get_by_test_id("stChatInputTextArea")
            chat.wait_for(timeout=ANSWER_TIMEOUT_MS)
            chat.fill("When were the oldest Velvet Pippin trees grafted?")
            chat.press("Enter")

            assistant = page.get_by_test_id("stChatMessage").filter(has=page.get_by_test_id("stExpander"))
            assistant.first.wait_for(timeout=ANSWER_TIMEOUT_MS)
            card = assistant.first.get_by_test_id("stExpander").first
            card_title = card.locator("summary").inner_text()
            assert re.search(r"\[1\] orchard_survey\.pdf — page 1", card_title), card_title
            card.locator("summary").click()
            switch = card.get_by_role("switch")
            for _ in range(3):  # the toggle: the page is drawn only now
                card.get_by_text("Show page").click()
                try:
                    sync_api.expect(switch).to_be_checked(timeout=5_000)
                    break
                except AssertionError:
                    # Seen on a loaded CI machine: the click left the switch off (the answer stayed). Click again,
                    # as a person would; the test still fails if the page never comes.
                    page.screenshot(path=str(tmp_path / "switch_off.png"), full_page=True)

            image = card.locator("img").first
            try:
                image.wait_for(timeout=60_000)
            except sync_api.TimeoutError as exc:
                page.screenshot(path=str(tmp_path / "no_page_image.png"), full_page=True)
                raise AssertionError(f"no page image; the card says: {card.inner_text()!r}; log: "
                                     f"{log.read_text()[-2000:]}") from exc
            page.wait_for_function("(img) => img.complete && img.naturalWidth > 0", arg=image.element_handle(),
                                   timeout=30_000)
            natural = image.evaluate("(img) => [img.naturalWidth, img.naturalHeight]")
            assert natural[0] > 600 and natural[1] > natural[0], natural  # a portrait page, at display resolution
            assert re.search(r"the cited sentences? highlighted", card.inner_text())
            page.wait_for_timeout(500)
            page.screenshot(path=str(tmp_path / "page_view.png"), full_page=True)
            assert page.get_by_test_id("stException").count() == 0
        finally:
            browser.close()
    assert (tmp_path / "page_view.png").stat().st_size > 10_000
    assert "Traceback" not in log.read_text()

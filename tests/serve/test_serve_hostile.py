"""Hostile uploads through `rag serve` (issue 28): `POST /v1/ingest` of the generated hostile files beside ordinary
ones ends with per-file outcomes in the job, while the server keeps answering; a parser that runs over its time
limit costs its file only, and no parser process outlives the job."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest
from serve_support import Server, wait_for_job

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))

import hostile_corpus as hc  # noqa: E402

UPLOADED_FAILURES = {
    "bomb.xlsx": "XLSX part xl/worksheets/sheet1.xml decompresses to 664 MB",
    "deep_mime.eml": "e-mail nested too deeply",
    "encrypted.docx": "encrypted DOCX (password required)",
    "huge_body.docx": "DOCX part word/document.xml decompresses to 1,024 MB",
    "huge_image.pdf": "PDF has no text layer (scanned?) and page 1's image is 35,000 x 35,000 pixels",
    "huge_pixels.png": "image has too many pixels",
    "repeats.ods": "ODS holds over 2,000,000 cells",
    "slow.html": "timed out after 2 s",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve_hostile")
    srv = Server(root / "home", RAG_INGEST__FILE_TIMEOUT_S="2", RAG_INGEST__FILE_MEMORY_MB="512").start()
    yield srv
    srv.stop()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_hostile_uploads_get_per_file_outcomes_while_the_server_answers(server, tmp_path):
    corpus = tmp_path / "corpus"
    hc.build(corpus, [name for name in hc.BUILDERS if name not in ("one_line.txt", "selfloop/again")])
    hc.one_line_txt(corpus / "one_line.txt", megabytes=2)
    body = "".join(f"<p>Paragraph {i} about herons.</p>" for i in range(200_000))
    (corpus / "slow.html").write_text(f"<html><body>{body}</body></html>")  # plain, but over 2 s to parse
    uploads = [("files", (path.name, path.read_bytes(), "application/octet-stream"))
               for path in sorted(corpus.rglob("*")) if path.is_file()]

    statuses: list[int] = []
    stop = threading.Event()

    def keep_asking() -> None:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            while not stop.is_set():
                statuses.append(client.get("/health").status_code)
                reply = client.post("/v1/chat/completions", json={
                    "model": "rag:default", "messages": [{"role": "user", "content": "What is a VAE?"}]})
                statuses.append(reply.status_code)
                time.sleep(0.1)

    asker = threading.Thread(target=keep_asking)
    with server.client() as http:
        response = http.post("/v1/ingest", data={"collection": "hostile"}, files=uploads)
        assert response.status_code == 202, response.text
        asker.start()
        try:
            job = wait_for_job(http, response.json()["id"], timeout=300)
        finally:
            stop.set()
            asker.join()

        assert len(statuses) >= 4 and set(statuses) == {200}, statuses
        assert job["status"] == "failed"  # some files failed; the rest were ingested
        failed = {item["path"]: item["error"] for item in job["result"]["failed"]}
        assert failed.keys() == UPLOADED_FAILURES.keys(), failed
        for name, reason in UPLOADED_FAILURES.items():
            assert failed[name].startswith(reason), (name, failed[name])
            assert f"{name}: {failed[name]}" in job["error"]
        stored = {"heron.md", "otter.txt", "kestrel.html", "ledger.xlsx", "memo.docx", "far_cell.xlsx",
                  "nested.html", "one_line.txt", "utf16.txt"}
        assert job["result"]["files"]["added"] == len(stored)
        docs = http.get("/v1/collections/hostile/documents").json()["data"]
        assert {d["source"] for d in docs} == stored

        reply = http.post("/v1/chat/completions", json={
            "model": "rag:hostile", "messages": [{"role": "user", "content": "When does the ferry leave?"}]})
        # (the server's log tail with the sources: a miss here once followed a background merge)
        assert reply.status_code == 200 and "memo.docx" in {s["source"] for s in reply.json()["sources"]}, (
            [(s["source"], s.get("score")) for s in reply.json().get("sources", [])], server.output())
        assert http.get("/ready").status_code == 200

    workers = [p for p in psutil.Process(server.proc.pid).children(recursive=True)
               if "_worker_entry" in " ".join(p.cmdline())]
    assert not workers, "parser workers outlived the job"

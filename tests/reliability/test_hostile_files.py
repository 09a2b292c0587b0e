"""A folder of hostile files beside ordinary ones (issue 28), generated at test time (bench/hostile_corpus.py), through
`rag ingest --json`: the run goes to the end with exit 1, every hostile file is reported with what happened, the
ordinary files are stored and answerable, the collection's earlier documents are untouched, the whole process tree
stays under 1.5 GB, and nothing is written outside the data home."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from reliability_support import rag_cmd, rag_env, snapshot

from rag_app.api import RAG
from rag_app.settings import Settings

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))

import hostile_corpus as hc  # noqa: E402
from hostile_bench import run_one  # noqa: E402

# path -> how its reason starts
FAILED = {
    "bomb.xlsx": "XLSX part xl/worksheets/sheet1.xml decompresses to 664 MB, over the 512 MB limit",
    "deep_mime.eml": "e-mail nested too deeply or too many parts (5,000 multipart sections",
    "encrypted.docx": "encrypted DOCX (password required)",
    "huge_body.docx": "DOCX part word/document.xml decompresses to 1,024 MB",
    "huge_image.pdf": "PDF has no text layer (scanned?) and page 1's image is 35,000 x 35,000 pixels",
    "huge_pixels.png": "image has too many pixels (2,500 MP)",
    "repeats.ods": "ODS holds over 2,000,000 cells",
    "selfloop/again": "symlink loop (points at a folder that holds it): not followed",
}
# path -> a phrase its stored text holds
STORED = {
    **hc.ORDINARY,
    "far_cell.xlsx": "column 16384: last",
    "nested.html": "x",
    "one_line.txt": "the quick brown fox",
    "utf16.txt": "The sea otter uses a stone to open clams.",
}
LIMITS = {"RAG_INGEST__FILE_TIMEOUT_S": "60", "RAG_INGEST__FILE_MEMORY_MB": "512"}


def _tree(root: Path, skip: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.lstat().st_size, p.lstat().st_mtime_ns) for p in root.rglob("*")
            if skip != p and skip not in p.parents}


@pytest.fixture
def hostile_folder(tmp_path) -> Path:
    corpus = tmp_path / "corpus"
    hc.build(corpus, [name for name in hc.BUILDERS if name != "one_line.txt"])
    hc.one_line_txt(corpus / "one_line.txt", megabytes=3)  # the 15 MB one is timed in bench/hostile_bench.py
    return corpus


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_hostile_folder_ingests_to_the_end(tmp_path, hostile_folder):
    home = tmp_path / "home"
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    (earlier / "lighthouse.md").write_text("# Lighthouse\n\nThe lighthouse keeper winds the clock at dusk.\n")
    done = subprocess.run(rag_cmd("ingest", str(earlier), "--json", "--quiet"), env=rag_env(home), text=True,
                          capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr
    before = snapshot(RAG(Settings(profile="test", home=home)).store())
    outside = _tree(tmp_path, home)

    result = run_one(REPO, home, hostile_folder, "default", "test", 300, LIMITS)

    assert result["exit"] == 1, result
    summary = result["summary"]
    failed = {item["path"]: item["error"] for item in summary["failed"]}
    assert failed.keys() == FAILED.keys(), failed
    for path, reason in FAILED.items():
        assert failed[path].startswith(reason), (path, failed[path])
        assert "\n" not in failed[path]
    assert summary["files"]["added"] == len(STORED) and summary["files"]["seen"] == len(STORED) + len(FAILED)
    assert result["peak_rss_mb"] <= 1536, result["peak_rss_mb"]
    assert result["seconds"] < 240

    store = RAG(Settings(profile="test", home=home)).store()
    texts: dict[str, str] = {}
    for _, meta, document in store.iter_records(include_documents=True):
        texts[meta["source"]] = texts.get(meta["source"], "") + document
    assert texts.keys() == {*STORED, "lighthouse.md"}
    for source, phrase in STORED.items():
        assert phrase in texts[source], source
    after = snapshot(store)
    assert {rid: after[rid] for rid in before} == before  # the earlier documents, untouched
    assert _tree(tmp_path, home) == outside  # nothing written outside the data home

    answer = RAG(Settings(profile="test", home=home)).ask("When does the ferry leave?")
    assert any(source.source == "facts/memo.docx" for source in answer.sources)


def test_a_file_over_its_time_limit_is_reported_and_the_rest_stored(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    body = "".join(f"<p>Paragraph {i} about herons.</p>" for i in range(150_000))
    (folder / "slow.html").write_text(f"<html><body>{body}</body></html>")
    (folder / "fast.md").write_text("# Fast\n\nThe swift sleeps on the wing.\n")
    done = subprocess.run(rag_cmd("ingest", str(folder), "--json", "--quiet"),
                          env=rag_env(tmp_path / "home", RAG_INGEST__FILE_TIMEOUT_S="1"), text=True,
                          capture_output=True, timeout=300)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    import json

    summary = json.loads(done.stdout)
    assert summary["failed"] == [{"path": "slow.html",
                                  "error": "timed out after 1 s (the limit is RAG_INGEST__FILE_TIMEOUT_S)"}]
    assert summary["files"]["added"] == 1

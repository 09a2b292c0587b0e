"""OCR is slow (about a second a page), so ingest progress counts the pages of a scanned file as they are read: in
the service's progress events, in `rag ingest`'s bar, and in the app's progress bar."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ingest.loaders.ocr import ocr_engine

REPO = Path(__file__).resolve().parents[2]
SCAN = REPO / "tests" / "fixtures" / "real_docs" / "harbour_survey_scan.pdf"  # two image-only pages
needs_ocr = pytest.mark.skipif(ocr_engine() is None, reason="no OCR engine installed: `make ocr-deps`")


@pytest.fixture
def scans(tmp_path) -> Path:
    folder = tmp_path / "scans"
    folder.mkdir()
    shutil.copy(SCAN, folder / "survey.pdf")
    (folder / "notes.md").write_text("# Notes\n\nThe harbour master keeps the mooring list.\n", encoding="utf-8")
    return folder


@needs_ocr
def test_progress_events_count_the_pages_of_a_scanned_pdf(rag, scans):
    events = []
    summary = rag.ingest([scans], progress=events.append)
    assert summary.files.added == 2 and not summary.failed
    during = [(e.current, e.files_done, e.pages_done, e.pages_total) for e in events if e.pages_total]
    assert during == [("survey.pdf", 1, 0, 2), ("survey.pdf", 1, 1, 2), ("survey.pdf", 1, 2, 2)]  # notes.md first
    notes = [e for e in events if e.current == "notes.md"]
    assert notes and all(e.pages_total == 0 for e in notes), "a text file is not OCR'd"
    assert events[-1].files_done == 2 and events[-1].pages_total == 0  # the count ends with the file

    from rag_app.ui.components import progress_reporter

    class Bar:  # what st.progress gives: .progress(fraction, text=...)
        def __init__(self):
            self.shown = []

        def progress(self, fraction, text=""):
            self.shown.append((round(fraction, 2), text))

    bar = Bar()
    report = progress_reporter(bar)
    for event in events:
        report(event)
    ocr = [shown for shown in bar.shown if "OCR page" in shown[1]]
    assert [fraction for fraction, _ in ocr] == [0.5, 0.72, 0.95]  # one file of two done, then its pages
    assert ocr[1][1] == "1/2 files · 0 chunks written · OCR page 1/2 · survey.pdf"  # notes.md's chunk still batched
    assert bar.shown[-1][0] == 1.0


@needs_ocr
def test_rag_ingest_shows_the_ocr_pages(scans, tmp_path):
    env = {**os.environ, "RAG_PROFILE": "test", "RAG_HOME": str(tmp_path / "home"), "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "rag_app", "ingest", str(scans)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "OCR page 0/2 survey.pdf" in done.stderr and "OCR page 2/2 survey.pdf" in done.stderr, done.stderr


def test_without_ocr_no_page_counts(rag, scans):
    (scans / "survey.pdf").unlink()
    events = []
    rag.ingest([scans], progress=events.append)
    assert events and all(e.pages_total == 0 and e.pages_done == 0 for e in events)

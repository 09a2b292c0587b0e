"""Hostile uploads on the Ingest page (issue 28): the page ends with a table naming each failed file and why, and the
ordinary files are ingested."""

from __future__ import annotations

import sys
from pathlib import Path

from streamlit.testing.v1 import AppTest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))

import hostile_corpus as hc  # noqa: E402

FAILED = {
    "bomb.xlsx": "zip bomb",
    "deep_mime.eml": "e-mail nested too deeply",
    "encrypted.docx": "encrypted DOCX (password required)",
    "huge_pixels.png": "over the 100 MP limit",
    "repeats.ods": "ODS holds over 2,000,000 cells",
}


def test_hostile_uploads_are_listed_with_reasons(monkeypatch, _isolated_home, tmp_path):
    monkeypatch.setenv("RAG_PROFILE", "test")
    corpus = tmp_path / "corpus"
    hc.build(corpus, list(FAILED) + ["utf16.txt"])
    files = [(path.name, path.read_bytes(), "application/octet-stream")
             for path in sorted(corpus.rglob("*")) if path.is_file()]
    app = AppTest.from_file(str(REPO / "streamlit_app.py"), default_timeout=120).run()
    app.switch_page("rag_app/ui/ingest_page.py").run()
    assert not app.exception, app.exception
    app.text_input(key="new_collection").input("hostile").run()
    app.file_uploader[0].set_value(files).run()
    next(b for b in app.button if b.label == "Ingest uploaded files").click().run()
    assert not app.exception, app.exception

    failures = app.table[0].value
    shown = dict(zip(failures["file"].tolist(), failures["reason"].tolist()))
    assert shown.keys() == FAILED.keys(), shown
    for name, words in FAILED.items():
        assert words in shown[name], (name, shown[name])
    summary = app.session_state["ingest_summary"]
    assert summary.files.added == len(hc.ORDINARY) + 1  # the facts and the UTF-16 notes

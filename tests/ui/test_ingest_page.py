"""The Ingest page's collection drop, through AppTest (the page calls `RAG.drop_collection`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[2] / "streamlit_app.py")
TIMEOUT = 180  # a first run ingests the bundled corpus on a shared, slow machine


def button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)


@pytest.fixture
def app(monkeypatch, _isolated_home):
    monkeypatch.setenv("RAG_PROFILE", "test")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    assert not at.exception, at.exception
    return at


def test_a_collection_can_be_dropped_after_typing_its_name(app, tmp_path):
    from rag_app.api import RAG

    doc = tmp_path / "otters.md"
    doc.write_text("# Otters\n\nOtters hold hands.\n", encoding="utf-8")
    app.switch_page("rag_app/ui/ingest_page.py").run()
    app.text_input(key="new_collection").input("notes")
    app.text_input(key="ingest_path").input(str(doc))
    button(app, "Ingest folder").click().run()
    assert app.dataframe[0].value["source"].tolist() == ["otters.md"]

    assert button(app, "Delete collection").disabled
    app.text_input(key="drop_notes").input("notes").run()
    button(app, "Delete collection").click().run()
    assert not app.exception, app.exception
    assert any("Deleted the collection notes" in s.value for s in app.success)
    assert "notes" not in {c.name for c in RAG().collections()}

"""The bundled corpus in the default collection: ingested on first use, and its changed pages brought up to date
after an upgrade of the app, without touching a collection that never held it or re-adding a page deleted on
purpose while the bundle stayed the same."""

from __future__ import annotations

import pytest

import rag_app.api
from rag_app.services.documents import list_documents


@pytest.fixture
def bundle(tmp_path, monkeypatch):
    """A bundled corpus of two pages, as the app would ship it."""
    corpus = tmp_path / "corpus"
    (corpus / "demos").mkdir(parents=True)
    (corpus / "flows.md").write_text("# Flows\n\nA normalising flow is an invertible network.\n", encoding="utf-8")
    (corpus / "demos" / "flow.md").write_text("# Flow demo\n\nThe flow demo trains 1,500 steps of batch 128.\n",
                                               encoding="utf-8")
    monkeypatch.setattr(rag_app.api, "bundled_corpus_dir", lambda: corpus)
    return corpus


def sources(rag) -> list[str]:
    return [d.source for d in list_documents(rag.store())]


def test_first_use_ingests_the_bundle_then_nothing_until_it_changes(rag, bundle):
    first = rag.ensure_corpus()
    assert first is not None and first.files.added == 2
    assert sources(rag) == ["demos/flow.md", "flows.md"]
    assert rag.ensure_corpus() is None  # up to date: nothing written

    # An upgrade rewrote one page: only that page is written again, under the same cited name.
    (bundle / "demos" / "flow.md").write_text("# Flow demo\n\nThe flow demo trains 1,500 steps with a batch size "
                                              "of 128.\n", encoding="utf-8")
    refreshed = rag.ensure_corpus()
    assert refreshed is not None and (refreshed.files.updated, refreshed.files.added) == (1, 0)
    assert sources(rag) == ["demos/flow.md", "flows.md"]
    texts = [h.text for h in rag.retrieve("flow demo batch size", k=4)]
    assert any("batch size of 128" in t for t in texts) and not any("of batch 128" in t for t in texts)
    assert rag.ensure_corpus() is None


def test_a_collection_of_the_users_own_documents_never_gets_the_bundle(rag, bundle, tmp_path):
    own = tmp_path / "mine"
    own.mkdir()
    (own / "notes.md").write_text("# Notes\n\nMy own notes about otters.\n", encoding="utf-8")
    assert rag.ingest([own]).files.added == 1
    (bundle / "flows.md").write_text("# Flows\n\nChanged by an upgrade.\n", encoding="utf-8")
    assert rag.ensure_corpus() is None
    assert sources(rag) == ["notes.md"]


def test_a_bundled_page_deleted_on_purpose_stays_deleted_while_the_bundle_is_unchanged(rag, bundle):
    rag.ensure_corpus()
    page = next(d for d in list_documents(rag.store()) if d.source == "flows.md")
    rag.delete_document(page.path)
    assert rag.ensure_corpus() is None
    assert sources(rag) == ["demos/flow.md"]



def test_rag_prepare_says_what_it_brought_up_to_date(bundle, monkeypatch, capsys):
    from rag_app.cli import main

    monkeypatch.setenv("RAG_PROFILE", "test")
    assert main(["prepare"]) == 0
    assert "indexed the bundled corpus: 2 files" in capsys.readouterr().out
    (bundle / "flows.md").write_text("# Flows\n\nA normalising flow is an invertible network with a tractable "
                                     "Jacobian.\n", encoding="utf-8")
    assert main(["prepare"]) == 0
    assert "brought the bundled corpus up to date: 1 files updated" in capsys.readouterr().out
    assert main(["prepare"]) == 0
    assert "nothing to index" in capsys.readouterr().out

"""Listing and deleting a collection's documents, one entry per ingested file."""

from __future__ import annotations

from rag_app.services.documents import delete_document, list_documents
from rag_app.services.uploads import save_uploads


def test_list_then_delete_an_uploaded_document(rag, test_settings):
    saved = save_uploads(test_settings, "default", [
        ("alpha.md", b"# Alpha\n\nThe alpha document talks about otters and rivers.\n"),
        ("beta.txt", b"The beta document talks about mountains.\n"),
    ]).saved
    summary = rag.ingest(saved)
    assert summary.ok and summary.files.added == 2

    store = rag.store()
    documents = list_documents(store)
    assert [d.source for d in documents] == ["alpha.md", "beta.txt"]
    assert all(d.chunks >= 1 and d.ingested_at for d in documents)
    before = store.count()

    removed = delete_document(test_settings, store, documents[0].path)
    assert removed == documents[0].chunks
    assert store.count() == before - removed
    assert [d.source for d in list_documents(store)] == ["beta.txt"]
    assert not saved[0].exists() and saved[1].exists()  # the uploaded copy went with it


def test_deleting_an_unknown_path_changes_nothing(rag, test_settings):
    assert delete_document(test_settings, rag.store(), "/nowhere.md") == 0
    assert list_documents(rag.store()) == []

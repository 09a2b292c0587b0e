"""`RAG.ingest_documents`: LangChain `Document`s get file ingest's guarantees (ids, idempotence, updates, prune,
bad input reported, the write protocol), and an optional LangChain text splitter."""

from __future__ import annotations

import json

import pytest
from langchain_core.document_loaders import BaseLoader
from langchain_core.documents import Document


def docs_v1() -> list[Document]:
    return [
        Document(page_content="Alpha particles are helium nuclei emitted in alpha decay.",
                 metadata={"source": "physics/alpha.txt", "author": "Curie", "year": 1899}),
        Document(page_content="Beta decay emits an electron and an antineutrino.",
                 metadata={"source": "physics/beta.txt", "tags": ["decay", "weak"]}),
        Document(page_content="Page one: gamma rays are photons.", metadata={"source": "gamma.pdf", "page": 1}),
        Document(page_content="Page two: gamma rays penetrate lead poorly.", metadata={"source": "gamma.pdf", "page": 2}),
    ]


def records(rag, collection="docs"):
    return {rid: (doc, meta) for rid, meta, doc in rag.store(collection).iter_records(include_documents=True)}


def by_source(rag, source, collection="docs"):
    return {rid: doc for rid, (doc, meta) in records(rag, collection).items() if meta["source"] == source}


def test_documents_are_ingested_once_by_source_with_their_metadata(rag):
    summary = rag.ingest_documents(docs_v1(), collection="docs")
    assert summary.ok and summary.files.seen == 3 and summary.files.added == 3
    stored = records(rag)
    assert summary.chunks_written == len(stored) == 4
    metas = {doc: meta for doc, meta in stored.values()}
    alpha = metas["Alpha particles are helium nuclei emitted in alpha decay."]
    assert alpha["source"] == alpha["path"] == alpha["doc_id"] == "physics/alpha.txt"
    assert alpha["title"] == "alpha.txt" and alpha["author"] == "Curie" and alpha["year"] == 1899
    assert alpha["origin"] == "langchain" and alpha["n_chunks"] == 1
    assert json.loads(metas["Beta decay emits an electron and an antineutrino."]["tags"]) == ["decay", "weak"]
    pages = sorted((m["page"], m["chunk_index"], m["n_chunks"]) for d, m in metas.items() if m["source"] == "gamma.pdf")
    assert pages == [(1, 0, 2), (2, 1, 2)]

    again = rag.ingest_documents(docs_v1(), collection="docs")
    assert again.files.unchanged == 3 and again.chunks_written == 0 and again.chunks_deleted == 0
    assert records(rag).keys() == stored.keys()


def test_ids_derive_from_content_not_from_the_run(rag):
    rag.ingest_documents(docs_v1(), collection="one")
    rag.ingest_documents(list(reversed(docs_v1())), collection="two")
    assert records(rag, "one").keys() == records(rag, "two").keys()


def test_a_changed_document_replaces_its_chunks_and_nothing_else(rag):
    rag.ingest_documents(docs_v1(), collection="docs")
    before = records(rag)
    changed = docs_v1()
    changed[1] = Document(page_content="Beta decay is mediated by the weak force.", metadata={"source": "physics/beta.txt"})
    summary = rag.ingest_documents(changed, collection="docs")
    assert summary.files.updated == 1 and summary.files.unchanged == 2
    assert summary.chunks_written == 1 and summary.chunks_deleted == 1
    beta = by_source(rag, "physics/beta.txt")
    assert list(beta.values()) == ["Beta decay is mediated by the weak force."] and not beta.keys() & before.keys()
    assert {r for r in records(rag) if r not in beta} == {r for r, (_, m) in before.items() if m["source"] != "physics/beta.txt"}

    metadata_only = docs_v1()
    metadata_only[0].metadata["author"] = "Rutherford"
    summary = rag.ingest_documents([metadata_only[0]], collection="docs")
    assert summary.files.updated == 1 and summary.chunks_written == 0  # same text: kept, metadata refreshed
    assert [m["author"] for _, m in records(rag).values() if m["source"] == "physics/alpha.txt"] == ["Rutherford"]


def test_prune_removes_dropped_sources_only_with_the_flag_and_never_files(rag, tmp_path):
    folder = tmp_path / "files"
    folder.mkdir()
    (folder / "note.md").write_text("# Note\n\nA file ingested from a path.\n")
    rag.ingest([folder], collection="docs")
    rag.ingest_documents(docs_v1(), collection="docs")
    kept = rag.ingest_documents(docs_v1()[:2], collection="docs")
    assert kept.files.deleted == 0 and by_source(rag, "gamma.pdf")
    pruned = rag.ingest_documents(docs_v1()[:2], collection="docs", prune=True)
    assert pruned.files.deleted == 1 and pruned.chunks_deleted == 2 and pruned.files.unchanged == 2
    assert not by_source(rag, "gamma.pdf") and by_source(rag, "note.md")

    # A file ingest's prune leaves document sources alone, even under its folder.
    (folder / "note.md").unlink()
    rag.ingest_documents([Document(page_content="Kept by source.", metadata={"source": str(folder / "gone.txt")})],
                         collection="docs")
    summary = rag.ingest([folder], collection="docs", prune=True)
    assert summary.files.deleted == 1 and not by_source(rag, "note.md") and by_source(rag, str(folder / "gone.txt"))


def test_bad_documents_are_reported_and_the_rest_goes_on(rag):
    rag.ingest_documents(docs_v1(), collection="docs")
    alpha_before = by_source(rag, "physics/alpha.txt")
    batch = [
        Document(page_content="   ", metadata={"source": "blank.txt"}),
        Document(page_content="Delta rays are secondary electrons.", metadata={"source": "delta.txt"}),
        Document(page_content="", metadata={"source": "delta.txt"}),
        "a bare string",
        *docs_v1()[:1],
    ]
    not_text = Document(page_content="placeholder", metadata={"source": "physics/alpha.txt"})
    object.__setattr__(not_text, "page_content", b"\x00binary")  # what a careless custom loader can hand over
    batch.append(not_text)
    summary = rag.ingest_documents(batch, collection="docs")
    failed = {f["path"]: f["error"] for f in summary.failed}
    assert set(failed) == {"blank.txt", "#3", "physics/alpha.txt"}
    assert failed["blank.txt"] == "no text to index" and "not a Document" in failed["#3"]
    assert "bytes, not text" in failed["physics/alpha.txt"]
    assert summary.skipped == [{"path": "blank.txt", "error": "document 0 is empty"},
                               {"path": "delta.txt", "error": "document 2 is empty"}]
    assert summary.files.added == 1 and list(by_source(rag, "delta.txt").values()) == ["Delta rays are secondary electrons."]
    assert by_source(rag, "physics/alpha.txt") == alpha_before  # a failed source keeps what it had
    assert not summary.ok


def test_documents_without_a_source_are_kept_by_id_or_content(rag):
    docs = [Document(page_content="An anonymous note about muons."),
            Document(page_content="A note with an id about pions.", id="note-7")]
    first = rag.ingest_documents(docs, collection="docs")
    sources = sorted(m["source"] for _, m in records(rag).values())
    assert first.files.added == 2 and sources[0] == "id:note-7" and sources[1].startswith("sha256:")
    assert rag.ingest_documents(docs, collection="docs").files.unchanged == 2


def test_a_loader_is_read_lazily_and_the_write_protocol_keeps_bm25_in_step(test_settings):
    from rag_app.api import RAG

    class TwoNotes(BaseLoader):
        def __init__(self, texts):
            self.texts = texts

        def lazy_load(self):
            for name, text in self.texts.items():
                yield Document(page_content=text, metadata={"source": name})

    rag = RAG(test_settings, **{"retrieve.mode": "lexical"})
    store = rag.store("docs")
    stamp = store.generation()
    rag.ingest_documents(TwoNotes({"a.txt": "Quokkas live on Rottnest Island.", "b.txt": "Wombats dig burrows."}),
                         collection="docs")
    assert store.generation() != stamp
    assert [h.metadata["source"] for h in rag.retrieve("quokkas", collection="docs")] == ["a.txt"]
    rag.ingest_documents(TwoNotes({"b.txt": "Wombats dig burrows."}), collection="docs", prune=True)
    assert rag.retrieve("quokkas", collection="docs") == []
    stamp = store.generation()
    rag.ingest_documents(TwoNotes({"b.txt": "Wombats dig burrows."}), collection="docs")
    assert store.generation() == stamp  # nothing changed, nothing written


def test_progress_reports_sources_and_chunks(rag):
    seen = []
    rag.ingest_documents(docs_v1(), collection="docs", progress=seen.append)
    assert seen[-1].files_done == seen[-1].files_total == 3 and seen[-1].chunks_written == 4


# -- a LangChain text splitter instead of ours ---------------------------------------------------------------------------
LONG = " ".join(f"Sentence {i} is about lanterns, harbours and the tides of the northern sea." for i in range(40))


def test_a_langchain_splitter_cuts_documents_and_is_part_of_the_chunking_signature(rag):
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    ours = rag.ingest_documents([Document(page_content=LONG, metadata={"source": "long.txt"})], collection="docs")
    splitter = RecursiveCharacterTextSplitter(chunk_size=200, chunk_overlap=0)
    split = rag.ingest_documents([Document(page_content=LONG, metadata={"source": "long.txt"})], collection="docs",
                                 splitter=splitter)
    assert split.files.updated == 1 and split.chunks_written > ours.chunks_written
    stored = records(rag)
    assert sorted(doc for doc, _ in stored.values()) == sorted(splitter.split_text(LONG))
    assert {m["chunking"] for _, m in stored.values()} == {next(iter(stored.values()))[1]["chunking"]}
    assert "RecursiveCharacterTextSplitter" in next(iter(stored.values()))[1]["chunking"]
    assert all(LONG[m["start_char"]:m["end_char"]] == doc for doc, m in stored.values())

    again = rag.ingest_documents([Document(page_content=LONG, metadata={"source": "long.txt"})], collection="docs",
                                 splitter=RecursiveCharacterTextSplitter(chunk_size=200, chunk_overlap=0))
    assert again.files.unchanged == 1 and again.chunks_written == 0
    back = rag.ingest_documents([Document(page_content=LONG, metadata={"source": "long.txt"})], collection="docs")
    assert back.files.updated == 1 and len(records(rag)) == ours.chunks_written


def test_a_splitter_never_breaks_the_token_limit(test_settings, tmp_path):
    from langchain_text_splitters import CharacterTextSplitter

    from rag_app.api import RAG
    from rag_app.components.embedder import FakeEmbedder

    embedder = FakeEmbedder(max_tokens=40)
    rag = RAG(test_settings, embedder=embedder)
    (tmp_path / "long.md").write_text("# Long\n\n" + LONG + "\n")
    summary = rag.ingest([tmp_path], splitter=CharacterTextSplitter(chunk_size=100_000, chunk_overlap=0))
    assert summary.ok and summary.chunks_written > 1
    stored = records(rag, None)
    assert all(m["n_tokens"] <= embedder.max_chunk_tokens for _, m in stored.values())
    assert all(m["start_line"] == m["end_line"] == 3 for _, m in stored.values())


@pytest.mark.parametrize("bad", [0, 7])
def test_split_document_checks_its_limit(bad):
    from ingest.chunking import split_document
    from ingest.types import Document as OurDocument
    from ingest.types import Segment

    with pytest.raises(ValueError, match="max_tokens"):
        split_document(OurDocument("d", "t", "text", [Segment("x")]), object(), len, bad)

"""Chunking: the hard token limit always holds; structure and metadata survive; overlap; determinism; cost."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from ingest.chunking import build_header, chunk_document
from ingest.loaders import load_file
from ingest.types import Document, Segment
from rag_app.components.embedder import FakeEmbedder

DOCS = Path(__file__).resolve().parents[1] / "fixtures" / "docs"
count = FakeEmbedder().count_tokens  # words and punctuation marks


class Counting:
    """A token counter that records how often and on how much text it was called."""

    def __init__(self, inner=count):
        self.inner = inner
        self.calls = 0
        self.chars = 0

    def __call__(self, text: str) -> int:
        self.calls += 1
        self.chars += len(text)
        return self.inner(text)


def sentences(n: int, start: int = 0) -> str:
    return " ".join(f"Sentence number {i} talks about topic {i % 7} in some detail." for i in range(start, start + n))


def doc_of(*segments: Segment, title: str = "Doc title", kind: str = "markdown") -> Document:
    return Document(doc_id="a/doc.md", title=title, kind=kind, segments=list(segments))


def assert_within(chunks, max_tokens, counter=count):
    assert chunks
    for chunk in chunks:
        assert counter(chunk.embed_text) <= max_tokens
        assert chunk.n_tokens == counter(chunk.embed_text)
        assert chunk.text.strip() == chunk.text and chunk.text


# --- the hard limit ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("max_tokens", [16, 40, 254])
def test_limit_holds_for_long_prose(max_tokens):
    text = "\n\n".join(sentences(30, 30 * p) for p in range(5))
    chunks = chunk_document(doc_of(Segment(text)), count, max_tokens)
    assert_within(chunks, max_tokens)
    assert len(chunks) > 5


def test_limit_holds_for_a_single_enormous_word():
    word = ".".join(f"x{i}" for i in range(3000))  # one whitespace-free 'word' of ~6000 tokens
    chunks = chunk_document(doc_of(Segment(f"before {word} after")), count, 50, overlap_tokens=0)
    assert_within(chunks, 50)
    assert "".join(c.text for c in chunks).replace(" ", "") == f"before{word}after"


def test_long_header_is_truncated_and_limit_holds():
    title = " ".join(f"title{i}" for i in range(500))
    section = " > ".join(f"Heading {i}" for i in range(100))
    chunks = chunk_document(doc_of(Segment(sentences(40), section=section), title=title), count, 64)
    assert_within(chunks, 64)
    header = chunks[0].embed_text.split("\n\n")[0]
    assert header.endswith("…") and count(header) <= 64 // 4
    assert chunks[0].title == title and chunks[0].section == section  # metadata keeps the full strings


def test_limit_holds_when_the_tokenizer_is_not_additive():
    def lumpy(text: str) -> int:  # joins cost extra tokens, so summed part counts under-estimate the whole
        return count(text) + 3 * text.count("\n") + 2 * text.count(". ")

    text = "\n".join(sentences(3, 3 * i) for i in range(40))
    chunks = chunk_document(doc_of(Segment(text), Segment(sentences(2))), lumpy, 60)
    assert_within(chunks, 60, lumpy)
    words = set(re.findall(r"\w+", text))
    assert words <= set(re.findall(r"\w+", " ".join(c.text for c in chunks)))


def test_very_long_text_without_counting_it_whole():
    counter = Counting()
    text = sentences(2000)  # ~26k tokens, far beyond any limit
    chunks = chunk_document(doc_of(Segment(text)), counter, 254)
    assert_within(chunks, 254)
    assert counter.chars < 3 * len(text)  # each sentence counted about once, plus one check per chunk


def test_too_small_limit_is_rejected():
    with pytest.raises(ValueError, match="max_tokens"):
        chunk_document(doc_of(Segment("text")), count, 4)


# --- structure and metadata -------------------------------------------------------------------------------


def test_sections_and_pages_are_never_merged():
    tiny_sections = doc_of(*(Segment(f"Short text {i}.", section=f"H > S{i}") for i in range(5)))
    chunks = chunk_document(tiny_sections, count, 254)
    assert [c.section for c in chunks] == [f"H > S{i}" for i in range(5)]
    pages = Document("r.pdf", "Report", "pdf", [Segment(f"Page {i} text.", page=i) for i in (1, 2, 3)])
    assert [(c.page, c.text) for c in chunk_document(pages, count, 254)] == [(i, f"Page {i} text.") for i in (1, 2, 3)]


def test_small_segments_of_one_section_merge_up_to_the_target():
    cells = [Segment(f"cell {i} text", section="Analysis", start_char=20 * i, end_char=20 * i + 11) for i in range(6)]
    chunks = chunk_document(doc_of(*cells, kind="notebook"), count, 254)
    assert len(chunks) == 1
    assert chunks[0].text == "\n\n".join(f"cell {i} text" for i in range(6))
    assert (chunks[0].start_char, chunks[0].end_char) == (0, 111)
    split = chunk_document(doc_of(*cells, kind="notebook"), count, 254, target_tokens=12)
    assert [c.text.count("cell") for c in split] == [3, 3]


def test_markdown_chunks_map_back_to_the_source():
    path = DOCS / "odd_machines.md"
    source = path.read_text()
    lines = source.split("\n")
    doc = load_file(path, "odd_machines.md")[0]
    chunks = chunk_document(doc, count, 40, overlap_tokens=8)
    assert len(chunks) > len(doc.segments)
    for chunk in chunks:
        assert source[chunk.start_char : chunk.end_char] == chunk.text
        assert chunk.start_line == source.count("\n", 0, chunk.start_char) + 1
        assert chunk.end_line == source.count("\n", 0, chunk.end_char - 1) + 1
        assert chunk.text in "\n".join(lines[chunk.start_line - 1 : chunk.end_line])
        assert chunk.doc_id == "odd_machines.md" and chunk.title == "Field Notes on Odd Machines"
    assert {c.section for c in chunks} == {s.section for s in doc.segments}


def test_pdf_chunks_keep_page_numbers():
    doc = load_file(DOCS / "orchard_survey.pdf", "orchard_survey.pdf")[0]
    chunks = chunk_document(doc, count, 30, overlap_tokens=0)
    assert {c.page for c in chunks} == {1, 2}
    assert all("9,400" not in c.text for c in chunks if c.page == 1)
    assert_within(chunks, 30)


def test_code_chunks_keep_lines_and_indentation():
    path = DOCS / "orbit_tools.py"
    lines = path.read_text().split("\n")
    doc = load_file(path, "orbit_tools.py")[0]
    chunks = chunk_document(doc, count, 40, overlap_tokens=0)
    for chunk in chunks:  # whole lines, indentation included
        assert chunk.text.split("\n") == lines[chunk.start_line - 1 : chunk.end_line]
    method = next(c for c in chunks if "def __init__" in c.text)
    assert method.section == "class Satellite"
    assert method.text.startswith("    def __init__")


def test_embed_text_header():
    assert build_header("Title", "") == "Title"
    assert build_header("Title", "Title > Part") == "Title > Part"  # the section already names the title
    assert build_header("Title", "Other > Part") == "Title\nOther > Part"
    assert build_header("", "") == ""
    [chunk] = chunk_document(doc_of(Segment("Body.", section="Doc title > Intro")), count, 254)
    assert chunk.embed_text == "Doc title > Intro\n\nBody."
    [chunk] = chunk_document(Document("1", "", "jsonl", [Segment("Just text.")]), count, 254)
    assert chunk.embed_text == "Just text."


def test_whitespace_only_segments_are_dropped():
    doc = doc_of(Segment("   \n\n\t "), Segment("Real text.", section="S"), Segment("\n"))
    assert [c.text for c in chunk_document(doc, count, 254)] == ["Real text."]


# --- overlap and determinism ------------------------------------------------------------------------------


def test_consecutive_chunks_overlap():
    text = sentences(60)
    chunks = chunk_document(doc_of(Segment(text, start_char=0, end_char=len(text))), count, 100, overlap_tokens=32)
    assert len(chunks) > 3
    for previous, current in zip(chunks, chunks[1:]):
        assert current.start_char < previous.end_char  # the next chunk starts inside the previous one
        overlap = text[current.start_char : previous.end_char]
        assert 8 <= count(overlap) <= 32
        assert previous.text.endswith(overlap) and current.text.startswith(overlap)


def test_no_overlap_partitions_the_text():
    text = sentences(60)
    chunks = chunk_document(doc_of(Segment(text, start_char=0, end_char=len(text))), count, 100, overlap_tokens=0)
    assert " ".join(c.text for c in chunks) == text
    assert all(b.start_char > a.end_char for a, b in zip(chunks, chunks[1:]))


def test_chunks_aim_at_the_target():
    chunks = chunk_document(doc_of(Segment(sentences(100))), count, 254, overlap_tokens=0, target_tokens=80)
    assert all(c.n_tokens <= 80 for c in chunks)
    assert sum(c.n_tokens for c in chunks) / len(chunks) > 60


def test_deterministic():
    doc = load_file(DOCS / "odd_machines.md", "odd_machines.md")[0]
    doc.segments.append(Segment(sentences(50), section="Extra"))
    assert chunk_document(doc, count, 40) == chunk_document(doc, count, 40)


# --- the real tokenizer -----------------------------------------------------------------------------------


@pytest.mark.integration
def test_real_tokenizer_limit_on_fixtures_and_scifact_sample():
    from rag_app.components.embedder import SentenceTransformerEmbedder

    embedder = SentenceTransformerEmbedder("packaged:all-MiniLM-L6-v2", device="cpu")
    max_tokens = embedder.max_chunk_tokens
    assert max_tokens == 254
    docs = [d for path in sorted(DOCS.iterdir()) for d in load_file(path, path.name)]
    scifact = Path(__file__).resolve().parents[3] / "shared" / "eval" / "scifact" / "corpus.jsonl"
    if scifact.exists():
        with scifact.open() as lines:
            sample = [json.loads(next(lines)) for _ in range(200)]
        docs += [Document(r["_id"], r["title"], "jsonl", [Segment(r["text"])]) for r in sample]
    docs.append(doc_of(Segment(("pneumonoultramicroscopicsilicovolcanoconiosis-" * 200) + " " + sentences(300))))
    for doc in docs:
        chunks = chunk_document(doc, embedder.count_tokens, max_tokens)
        for chunk in chunks:
            ids = embedder.tokenizer(chunk.embed_text, add_special_tokens=True)["input_ids"]
            assert len(ids) <= embedder.max_tokens  # nothing is truncated by the model
        # Counted from one tokenisation per segment (what an ingest does): the same chunks, the same counts.
        assert chunk_document(doc, embedder.count_tokens, max_tokens, token_spans=embedder.token_spans) == chunks
        assert all(chunk.n_tokens == embedder.count_tokens(chunk.embed_text) for chunk in chunks)

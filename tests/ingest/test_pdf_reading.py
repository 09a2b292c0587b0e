"""PDFs read as a person reads them (issue 27), on a generated two-column paper: column by column, line-end
hyphens joined (real compounds kept), running headers and page numbers dropped, headings as sections, the
reference list marked, words set apart without space characters kept apart, and the page view still boxing a
cited sentence whose words were rejoined."""

from __future__ import annotations

import re

import pytest

from ingest.loaders import load_file
from rag_app.services.page_view import render_page
from tests.fixtures.paper_pdf import Text, column, paper_pdf

HEADER = "Proceedings of the Tidal Workshop 2024"
LEFT = ["Rock pools hold a small world that chil-", "dren can study at low tide. The pools were intro-",
        "duced to the school year in 1998 by the warden.", "A state-of-the-",
        "art survey counted 412 species in one pool."]
RIGHT = ["Each class visits the pools twice a month and", "records every crab it finds in a field book."]
SPACELESS = "The keepers measured salinity every single morning."


def _furniture(page: int) -> list[Text]:
    return [Text(200, 760, HEADER, size=8), Text(300, 30, str(page), size=9)]


@pytest.fixture
def paper(tmp_path):
    page1 = _furniture(1) + [Text(72, 700, "Tide Pools as Classrooms", size=18),
                             Text(72, 640, "1 Introduction", size=12, bold=True)]
    page1 += column(72, 620, LEFT)  # the left column first, as TeX writes it: a reader by rows would interleave
    page1 += [Text(320, 640, "2 Method", size=12, bold=True)] + column(320, 620, RIGHT)
    page1 += [Text(320, 596, SPACELESS, gap=True)]
    page2 = _furniture(2) + column(72, 700, ["The crabs were released where they were found.",
                                             "Counts rose each spring of the survey."])
    page3 = _furniture(3) + [Text(72, 700, "References", size=12, bold=True)]
    page3 += column(72, 680, ["[1] A. Warden. Rock pools of the northern shore. Shore Press, 1997.",
                              "[2] B. Keeper. Counting crabs by hand. Tide Books, 2001."])
    path = tmp_path / "papers" / "tide_pools.pdf"
    path.parent.mkdir()
    path.write_bytes(paper_pdf([page1, page2, page3]))
    return path


def _segments(path):
    (doc,) = load_file(path, path.name)
    return doc, doc.segments


def test_a_two_column_page_reads_column_by_column(paper):
    _, segments = _segments(paper)
    text = "\n".join(seg.text for seg in segments if seg.page == 1)
    assert "A state-of-the-art survey counted 412 species in one pool." in text
    assert text.index("Rock pools hold") < text.index("by the warden.") < text.index("Each class visits")
    assert "Each class visits the pools twice a month and records every crab it finds in a field book." in text


def test_line_end_hyphens_are_joined_and_compounds_kept(paper):
    _, segments = _segments(paper)
    text = " ".join(seg.text for seg in segments)
    assert "a small world that children can study" in text
    assert "The pools were introduced to the school year" in text
    assert "chil-" not in text and "intro-" not in text and "state-of-the-art" in text


def test_running_header_and_page_numbers_are_dropped_and_the_title_found(paper):
    doc, segments = _segments(paper)
    assert doc.title == "Tide Pools as Classrooms"
    assert not any("Tidal Workshop" in seg.text or "Tide Pools as Classrooms" in seg.text for seg in segments)
    assert not any(line.strip() in {"1", "2", "3"} for seg in segments for line in seg.text.split("\n"))


def test_headings_become_sections(paper):
    _, segments = _segments(paper)
    section = {seg.text.split()[0]: seg.section for seg in segments}
    assert section["Rock"] == "1 Introduction"
    assert section["Each"] == "2 Method"
    assert section["The"] in {"2 Method"}  # page 2 carries on under the last heading of page 1


def test_words_set_apart_without_spaces_are_not_glued(paper):
    _, segments = _segments(paper)
    text = " ".join(seg.text for seg in segments)
    assert SPACELESS in text  # the words were set apart by kerning alone: a reader by gaps of 3 pt glues them
    assert not re.search(r"[a-z]{25,}", text)


def test_references_are_marked_in_chunk_metadata_and_sections_reach_the_sources(rag, paper):
    rag.ingest([paper.parent])
    hits = rag.retrieve("Warden Rock pools of the northern shore Shore Press", k=8)
    reference = next(hit for hit in hits if "Shore Press" in hit.text)
    assert reference.metadata.get("references") is True and reference.metadata.get("section") == "References"
    body = next(hit for hit in rag.retrieve("children study rock pools at low tide", k=8) if "children" in hit.text)
    assert not body.metadata.get("references") and body.metadata.get("section") == "1 Introduction"
    assert body.metadata.get("page") == 1


def test_the_page_view_still_boxes_a_sentence_whose_words_were_rejoined(paper):
    sentence = "The pools were introduced to the school year in 1998 by the warden."
    _, segments = _segments(paper)
    assert any(sentence in seg.text for seg in segments)
    view = render_page(paper, 1, [sentence])
    assert view.found == 1 and view.boxes
    assert all(box[0] < view.width / 2 for box in view.boxes)  # over the left column, where the sentence is

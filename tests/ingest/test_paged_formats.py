"""DOCX, PPTX and HTML read as a person reads them (issue 27, item 4), on the generated handbook of
`tests/fixtures/paged_docs.py`: a sentence broken by a soft line break reads as one sentence (a word hyphenated by
hand at the break rejoined, a compound kept), breaks between short lines stay, list items keep their marker and
follow their lead-in, headings give sections, `<br><br>` parts paragraphs, running headers and footers stay out
of the body, ligatures are expanded."""

from __future__ import annotations

import pytest

from ingest.loaders import load_file
from rag_app.text import split_sentences
from tests.fixtures import paged_docs
from tests.fixtures.paged_docs import FOOTER, HEADER, TITLE, WRITERS, known_sentences

FORMATS = sorted(WRITERS)
WIDTH = 40  # wraps every known sentence at least once and hyphenates "scheduled" by hand


def _load(tmp_path, fmt: str):
    path = tmp_path / f"handbook.{fmt}"
    path.write_bytes(WRITERS[fmt](WIDTH, 0))
    (doc,) = load_file(path, path.name)
    return doc


def _expected_section(fmt: str, path: str, slide_title: str) -> str:
    return {"docx": path, "html": f"{TITLE} > {path}", "pptx": slide_title}[fmt]


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_sentence_broken_by_soft_line_breaks_reads_as_one_sentence_under_its_section(tmp_path, fmt):
    doc = _load(tmp_path, fmt)
    sentences = {sentence: segment.section for segment in doc.segments for sentence in split_sentences(segment.text)}
    for sentence, path, slide_title in known_sentences():
        assert sentence in sentences, sentence
        assert sentences[sentence] == _expected_section(fmt, path, slide_title)


@pytest.mark.parametrize("fmt", FORMATS)
def test_hand_hyphenation_is_rejoined_and_compounds_keep_their_hyphen(tmp_path, fmt):
    text = "\n".join(segment.text for segment in _load(tmp_path, fmt).segments)
    assert "Dredging of the inner channel is scheduled every third summer" in text  # "schedu-" + break + "led"
    assert "a state-of-the-art suction dredger" in text
    assert "ﬁ" not in text and "first-aid kit beside the fire door" in text
    assert "\v" not in text


@pytest.mark.parametrize("fmt", FORMATS)
def test_list_items_keep_their_markers_and_follow_their_lead_in(tmp_path, fmt):
    text = "\n".join(segment.text for segment in _load(tmp_path, fmt).segments)
    assert ("Before a winter mooring is granted, the owner must provide:\n"
            "- a current insurance schedule\n"
            "- proof of a working bilge pump\n"
            "  - tested within the last six months\n"
            "- the name of a local keyholder") in text
    assert ("During a fire alarm the duty officer follows these steps:\n"
            "1. Sound the quay siren twice\n"
            "2. Close the fuel berth valves\n"
            "3. Count the crews at the muster point by the slipway") in text


@pytest.mark.parametrize("fmt", FORMATS)
def test_meant_line_breaks_stay_and_paragraphs_stay_apart(tmp_path, fmt):
    text = "\n".join(segment.text for segment in _load(tmp_path, fmt).segments)
    assert "Harbour Office\n12 Quay Street\nSaltmere SM4 9QT" in text
    assert "forty metres of wall.\n\nReconstruction took eleven years" in text  # <br><br>, two paragraphs, boxes


@pytest.mark.parametrize("fmt", FORMATS)
def test_running_headers_and_footers_are_not_mixed_into_the_body(tmp_path, fmt):
    doc = _load(tmp_path, fmt)
    text = "\n".join(segment.text for segment in doc.segments)
    assert HEADER not in text and FOOTER not in text
    assert doc.title == TITLE


def test_an_ingested_deck_answers_with_the_whole_sentence_and_its_slide(rag, tmp_path):
    folder = tmp_path / "handbook"
    folder.mkdir()
    (folder / "handbook.pptx").write_bytes(WRITERS["pptx"](WIDTH, 0))
    rag.ingest([folder])
    sentence = "Dredging of the inner channel is scheduled every third summer to keep a depth of four metres."
    hits = rag.retrieve("How often is the inner channel dredged?", k=3)
    top = next(hit for hit in hits if sentence in hit.text)
    assert top.metadata.get("section") == "Maintenance" and top.metadata.get("slide") == len(paged_docs.HANDBOOK) + 1
    assert FOOTER not in top.text

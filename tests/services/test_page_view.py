"""The cited PDF page, rendered with the cited sentence highlighted: the box lies over the sentence's glyphs (found
independently, as rows of dark pixels in the plain rendering) and nowhere else; OCR'd pages are boxed through the
OCR word boxes; only files the collection holds are opened."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest
from PIL import Image

from ingest.loaders.ocr import ocr_engine
from rag_app.errors import RagError
from rag_app.services.page_view import cited_pdf, render_page, sentences_of

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
ORCHARD = FIXTURES / "docs" / "orchard_survey.pdf"  # page 1: title, blank, then one sentence a line
SCAN = FIXTURES / "real_docs" / "harbour_survey_scan.pdf"  # two image-only pages
CITED = "Its oldest trees were grafted from a single wild seedling found in 1931."
SCAN_CITED = "The harbour has 86 swinging moorings and 12 pontoon berths."
needs_ocr = pytest.mark.skipif(ocr_engine() is None, reason="no OCR engine installed: `make ocr-deps`")


def pixels(png: bytes) -> Image.Image:
    return Image.open(io.BytesIO(png)).convert("RGB")


def text_lines(image: Image.Image) -> list[tuple[int, int, int, int]]:
    """The text lines of a rendering, top to bottom: (left, top, right, bottom) of each band of rows holding dark
    pixels."""
    gray = image.convert("L")
    width, height = gray.size
    data = gray.load()
    dark_rows = [y for y in range(height) if any(data[x, y] < 128 for x in range(width))]
    bands: list[list[int]] = []
    for y in dark_rows:
        if bands and y - bands[-1][-1] <= 1:
            bands[-1].append(y)
        else:
            bands.append([y])
    out = []
    for rows in bands:
        xs = [x for y in rows for x in range(width) if data[x, y] < 128]
        out.append((min(xs), rows[0], max(xs), rows[-1]))
    return out


def inside(line: tuple[int, int, int, int], box: tuple[int, int, int, int], slack: int = 0) -> bool:
    return (box[0] - slack <= line[0] and line[2] <= box[2] + slack
            and box[1] - slack <= line[1] and line[3] <= box[3] + slack)


def is_highlight(rgb: tuple[int, int, int]) -> bool:
    red, green, blue = rgb
    return red > 230 and green > 190 and blue < 180  # white under translucent yellow


def test_the_highlight_box_lies_over_the_cited_sentence_and_nowhere_else():
    plain = pixels(render_page(ORCHARD, 1).png)
    view = render_page(ORCHARD, 1, [CITED])
    image = pixels(view.png)
    assert view.highlighted and view.found == 1 and not view.note and image.size == plain.size
    (box,) = view.boxes
    lines = text_lines(plain)
    title, first, cited, after = lines[:4]  # the title, then one sentence a line
    assert inside(cited, box), (cited, box)  # every glyph of the sentence, its full stop too, is boxed
    assert box[0] >= cited[0] - 4 and box[2] <= cited[2] + 4  # and no more than that line
    for other in (title, first, after):
        assert other[3] < box[1] or other[1] > box[3], "a line that is not cited is outside the box"

    left, top, right, bottom = box
    between = ((left + right) // 2, top + 1)  # blank paper inside the box, above the glyphs
    assert plain.getpixel(between) == (255, 255, 255) and is_highlight(image.getpixel(between))
    in_box = [image.getpixel((x, y)) for x in range(left + 2, right - 2, 5) for y in range(top + 1, bottom - 1, 3)]
    assert sum(map(is_highlight, in_box)) > 0.6 * len(in_box)  # the paper in the box is yellow
    glyphs = [(x, y) for x in range(left, right) for y in range(top, bottom) if sum(plain.getpixel((x, y))) < 150]
    assert glyphs and all(sum(image.getpixel(p)) < 400 for p in glyphs)  # and the glyphs stay dark, readable
    outside = [(x, y) for x in range(0, image.width, 7) for y in range(0, image.height, 7)
               if not (left <= x <= right and top <= y <= bottom)]
    assert all(image.getpixel(p) == plain.getpixel(p) for p in outside)  # nothing changes outside the box


def test_a_sentence_read_a_little_differently_is_still_found():
    spacing = render_page(ORCHARD, 1, ["its oldest  trees were\ngrafted from a single wild seed-\nling found in 1931"])
    assert spacing.found == 1 and len(spacing.boxes) == 1
    one_word_off = render_page(ORCHARD, 1, ["Its oldest trees were grafted from one wild seedling found in 1931."])
    assert one_word_off.found == 1 and one_word_off.boxes[0][1] == pytest.approx(spacing.boxes[0][1], abs=2)


def test_a_sentence_not_on_the_page_is_said_so():
    view = render_page(ORCHARD, 2, [CITED])  # the sentence is on page 1
    assert not view.highlighted and view.found == 0
    assert view.note.startswith("the cited sentence was not found on page 2")
    assert pixels(view.png).size == pixels(render_page(ORCHARD, 2).png).size


def test_a_page_that_does_not_exist_is_a_rag_error(tmp_path):
    with pytest.raises(RagError, match="has 2 pages, not a page 3"):
        render_page(ORCHARD, 3, [CITED])
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.4 not really")
    with pytest.raises(RagError, match="cannot open .* as a PDF"):
        render_page(broken, 1)


@needs_ocr
def test_an_ocrd_page_is_highlighted_over_its_ocr_words():
    plain = pixels(render_page(SCAN, 2).png)
    view = render_page(SCAN, 2, [SCAN_CITED], ocr=True)
    assert view.found == 1 and len(view.boxes) == 1 and not view.note
    heading, cited, after = text_lines(plain)[:3]  # "Moorings", the cited line, the next one (skewed a little)
    assert inside(cited, view.boxes[0], slack=3), (cited, view.boxes)
    assert after[1] > view.boxes[0][1] and heading[3] < view.boxes[0][1]


def test_without_an_ocr_engine_an_ocrd_page_is_shown_unhighlighted():
    view = render_page(SCAN, 2, [SCAN_CITED], ocr=True, ocr_engine="off")
    assert not view.highlighted and "shown without highlight" in view.note


def test_sentences_of_takes_the_cited_spans_in_order_once():
    text = "First one.  Second\none. Third."
    assert sentences_of(text, [(12, 23), (0, 10), (12, 23), (5, 99)]) == ["Second one.", "First one."]


def test_cited_pdf_opens_only_what_the_collection_holds(rag, tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    shutil.copy(ORCHARD, folder / "orchard_survey.pdf")
    rag.ingest([folder])
    store = rag.store()
    hit = next(h for h in rag.retrieve("oldest trees grafted seedling", k=4) if h.metadata.get("page") == 1)
    found = cited_pdf(store, "orchard_survey.pdf", 1, hit.text)
    assert found.path == (folder / "orchard_survey.pdf").resolve() and found.page == 1 and not found.reason

    assert "only PDF pages" in cited_pdf(store, "notes.md", 1, "x").reason
    assert "no longer in this collection" in cited_pdf(store, "elsewhere/orchard_survey.pdf", 1, hit.text).reason
    (folder / "orchard_survey.pdf").unlink()
    gone = cited_pdf(store, "orchard_survey.pdf", 1, hit.text)
    assert gone.path is None and "no longer exists" in gone.reason


def test_a_pdf_named_by_langchain_documents_is_not_opened(rag, tmp_path):
    from langchain_core.documents import Document

    pdf = tmp_path / "orchard_survey.pdf"
    shutil.copy(ORCHARD, pdf)  # the file is there, but the app never read it: the documents only name it
    text = "Its oldest trees were grafted from a single wild seedling found in 1931."
    rag.ingest_documents([Document(page_content=text, metadata={"source": str(pdf), "page": 1})])
    found = cited_pdf(rag.store(), str(pdf), 1, text)
    assert found.path is None and "not ingested from a PDF file" in found.reason

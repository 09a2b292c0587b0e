"""A source says where in its file it comes from: page (and OCR), slide, sheet and rows, chapter, message."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from rag_app.services.answer import Source
from rag_app.ui.components import source_label


def source(**meta) -> Source:
    return Source.from_hit(2, SimpleNamespace(metadata={"source": "f", **meta}, score=0.5, text="t", id="i"))


@pytest.mark.parametrize(("meta", "where", "label"), [
    ({"page": 3, "ocr": True}, "page 3 (OCR)", "[2] f — page 3 (OCR) · score 0.50"),
    ({"slide": 4, "section": "Intro"}, "slide 4", "[2] f — Intro, slide 4 · score 0.50"),
    ({"sheet": "Q3", "start_line": 2, "end_line": 9}, "sheet Q3, rows 2-9", "[2] f — sheet Q3 · score 0.50"),
    ({"message": 2, "attachment": "notes.txt"}, "message 2, attachment notes.txt",
     "[2] f — message 2, attachment notes.txt · score 0.50"),
    ({"start_line": 10, "end_line": 20}, "lines 10-20", "[2] f · score 0.50"),
])
def test_the_location_of_a_source(meta, where, label):
    found = source(**meta)
    assert found.location() == where
    assert source_label(found) == label
    assert found.to_dict()["locator"] == {k: v for k, v in meta.items() if k in ("slide", "sheet", "message",
                                                                                 "attachment", "ocr")}

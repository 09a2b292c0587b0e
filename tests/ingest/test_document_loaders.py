"""Office, e-book and mail loaders on generated fixtures with known facts (tests/fixtures/real_docs), their locators
in the chunk metadata, and a clear LoadError for every corrupt, encrypted or empty file."""

from __future__ import annotations

import importlib.util
import io
import shutil
import zipfile
from pathlib import Path

import pytest

from ingest.loaders import load_file
from ingest.loaders.ocr import OCR_ENGINES, ocr_engine
from ingest.types import LoadError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def _module(name: str):
    spec = importlib.util.spec_from_file_location(f"_fixture_{name}", FIXTURES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


REAL = _module("real_expected")
REAL_DOCS = FIXTURES / REAL.REAL_DIR_NAME
MAKE = _module("make_real_docs")
NO_OCR = "no OCR engine installed: `make ocr-deps` installs tesseract-ocr"
needs_ocr = pytest.mark.skipif(ocr_engine() is None, reason=NO_OCR)


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("name", sorted(REAL.REAL_EXPECTED))
def test_fixture_fact_is_in_one_segment_with_its_locator(name):
    expected = REAL.REAL_EXPECTED[name]
    if expected.get("ocr") and ocr_engine() is None:
        pytest.skip(NO_OCR)
    docs = load_file(REAL_DOCS / name, f"sub/{name}")
    assert {doc.kind for doc in docs} == {expected["kind"]}
    holding = [(doc, seg) for doc in docs for seg in doc.segments if expected["phrase"] in seg.text]
    assert len(holding) == 1, [seg.text for doc in docs for seg in doc.segments]
    doc, seg = holding[0]
    assert doc.title == expected["title"]
    assert doc.doc_id == f"sub/{name}" + expected.get("doc_suffix", "")
    assert expected["locator"].items() <= seg.extra.items()
    if "section" in expected:
        assert seg.section == expected["section"]
    if "page" in expected:
        assert seg.page == expected["page"]


def test_pptx_slides_in_order_with_notes_and_tables():
    (doc,) = load_file(REAL_DOCS / "kelp_farm.pptx", "kelp_farm.pptx")
    assert [seg.extra["slide"] for seg in doc.segments] == [1, 2, 3]
    assert [seg.section for seg in doc.segments] == ["Saltmere Kelp Farm", "Farm layout", "Yields"]
    assert "Notes: Mention that the storm of 2022 broke two anchors." in doc.segments[1].text
    assert "| Year | Wet tonnes |\n| --- | --- |\n| 2021 | 38 |" in doc.segments[2].text


def test_spreadsheet_rows_carry_header_sheet_and_row_numbers():
    (doc,) = load_file(REAL_DOCS / "ferry_budget.xlsx", "ferry_budget.xlsx")
    assert [seg.extra["sheet"] for seg in doc.segments] == ["Summary", "Maintenance"]  # the empty sheet is skipped
    maintenance = doc.segments[1]
    assert (maintenance.start_line, maintenance.end_line) == (2, 5)
    assert maintenance.text.splitlines()[-1] == "Item: Life rafts; Year: 2022; Cost: 910"


def test_epub_chapters_in_spine_order_with_subsections():
    (doc,) = load_file(REAL_DOCS / "lighthouse_cats.epub", "lighthouse_cats.epub")
    assert [(seg.extra["chapter"], seg.section) for seg in doc.segments] == [
        (1, "Foreword"), (2, "Arrival at Skerry"), (3, "The Great Storm"), (3, "The Great Storm > Repairs")]


def test_mbox_one_document_per_message_with_sender_and_date():
    docs = load_file(REAL_DOCS / "harbour_mail.mbox", "harbour_mail.mbox")
    assert [doc.title for doc in docs] == ["Harbour dues", "Ferry docking change", "Lost buoy"]
    first = docs[0].segments[0]
    assert first.extra == {"from": "Ines Varga <ines@example.org>", "date": "2025-03-03T08:30:00+00:00", "message": 1}
    assert "\nFrom the office: thank you." in first.text  # the mboxrd ">From " quoting is undone


def test_eml_attachment_read_by_its_own_loader():
    (doc,) = load_file(REAL_DOCS / "net_repair.eml", "net_repair.eml")
    body, attachment = doc.segments
    assert body.text.startswith("From: Mira Holt <mira@example.org>\n")
    assert attachment.section == "Attachment: invoice.csv" and attachment.start_line == 2


def _zip(members: dict[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with zipfile.ZipFile(raw, "w") as archive:
        for name, body in members.items():
            archive.writestr(name, body)
    return raw.getvalue()


_OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504)  # what Office writes for a password-protected file


@pytest.mark.parametrize(
    "name, data, reason",
    [
        ("deck.pptx", b"PK not really", "corrupt PPTX (not a zip archive)"),
        ("deck.pptx", _OLE, "encrypted or legacy PPTX"),
        ("deck.pptx", _zip({"hello.txt": b"hi"}), "corrupt PPTX: "),
        ("book.xlsx", b"garbage", "corrupt XLSX (not a zip archive)"),
        ("book.xlsx", _OLE, "encrypted or legacy XLSX"),
        ("book.xlsx", _zip({"hello.txt": b"hi"}), "corrupt XLSX: "),
        ("sheet.ods", _zip({"mimetype": b"application/vnd.oasis.opendocument.spreadsheet"}), "corrupt ODS: "),
        ("novel.epub", b"not a zip", "corrupt EPUB (not a zip archive)"),
        ("novel.epub", _zip({"mimetype": b"application/epub+zip"}), "corrupt EPUB: "),
        ("novel.epub", _zip({"mimetype": b"application/epub+zip", "META-INF/encryption.xml":
                             b"<encryption><EncryptedData><CipherData/></EncryptedData></encryption>"}),
         "encrypted EPUB (DRM-protected)"),
        ("note.eml", b"just some words\nwithout headers\n", "not an e-mail message"),
        ("box.mbox", b"Subject: hi\n\nno From line\n", "not an mbox file"),
    ],
)
def test_bad_files_raise_a_clear_load_error(tmp_path, name, data, reason):
    with pytest.raises(LoadError) as info:
        load_file(write(tmp_path, name, data), name)
    assert str(info.value).startswith(reason), str(info.value)


def test_empty_workbook_and_deck_say_so(tmp_path):
    import openpyxl
    from pptx import Presentation

    raw = io.BytesIO()
    openpyxl.Workbook().save(raw)
    with pytest.raises(LoadError, match=r"^no text in XLSX \(every sheet is empty\)$"):
        load_file(write(tmp_path, "empty.xlsx", raw.getvalue()), "empty.xlsx")
    raw = io.BytesIO()
    Presentation().save(raw)
    with pytest.raises(LoadError, match=r"^no slides in PPTX$"):
        load_file(write(tmp_path, "empty.pptx", raw.getvalue()), "empty.pptx")


def _read(path: Path):
    return [(doc.doc_id, doc.title, seg.text, seg.section, seg.page, seg.extra)
            for doc in load_file(path, path.name) for seg in doc.segments]


def test_regenerated_fixtures_read_the_same(tmp_path, monkeypatch):
    # Compared as read, not byte for byte: the writers' libraries may lay out their files differently by version.
    monkeypatch.setattr(MAKE, "OUT", tmp_path)
    MAKE.main()
    for name, expected in REAL.REAL_EXPECTED.items():
        if expected.get("ocr") and ocr_engine() is None:
            continue
        assert _read(tmp_path / name) == _read(REAL_DOCS / name), name


def test_locators_reach_the_chunk_metadata_and_a_bad_file_does_not_stop_the_batch(rag, tmp_path):
    root = tmp_path / "mixed"
    shutil.copytree(REAL_DOCS, root, ignore=lambda _, names: [n for n in names if REAL.REAL_EXPECTED[n].get("ocr")])
    (root / "broken.xlsx").write_bytes(b"not a workbook")
    summary = rag.ingest([root])
    assert summary.files.added == len(list(root.iterdir())) - 1
    assert summary.failed == [{"path": "broken.xlsx", "error": "corrupt XLSX (not a zip archive)"}]
    records = [meta for _, meta, _ in rag.store().iter_records()]
    slides = {meta["slide"] for meta in records if meta["source"] == "kelp_farm.pptx"}
    assert slides == {1, 2, 3}
    budget = [meta for meta in records if meta.get("sheet") == "Maintenance"]
    assert budget and budget[0]["start_line"] == 2 and budget[0]["kind"] == "xlsx"
    mail = {meta["message"]: meta["title"] for meta in records if meta["source"] == "harbour_mail.mbox"}
    assert mail == {1: "Harbour dues", 2: "Ferry docking change", 3: "Lost buoy"}


# --- tables -------------------------------------------------------------------------------------------------


def test_pdf_ruled_table_becomes_a_markdown_table_in_place():
    (doc,) = load_file(REAL_DOCS / "passenger_counts.pdf", "passenger_counts.pdf")
    (page,) = doc.segments
    assert (page.page, page.section) == (1, "Harbour Passenger Counts")  # the bold heading names the section
    assert page.text.split("\n\n") == [
        "Passengers landed per year at each station, as counted by the harbour office.",
        "| Station | 2020 | 2021 | 2022 |\n| --- | --- | --- | --- |\n| Quillby | 1,204 | 1,377 | 1,290 |\n"
        "| Saltmere | 880 | 912 | 1,015 |\n| Skerry | 143 | 156 | 171 |",
        "Counts for 2022 exclude the closed winter months.",
    ]


def test_docx_and_html_tables_are_markdown():
    (docx,) = load_file(FIXTURES / "docs" / "submarine_kitchen.docx", "k.docx")
    assert "| Dish | Calories |\n| --- | --- |\n| Kelp stew | 310 |" in docx.segments[-1].text
    (html,) = load_file(FIXTURES / "docs" / "marmot_station.html", "m.html")
    assert "| Instrument | Installed |\n| --- | --- |\n| Rain gauge | 1934 |" in html.segments[-1].text


def test_a_split_table_repeats_its_header_in_every_chunk():
    from ingest.chunking import chunk_document
    from ingest.loaders.tables import markdown_table
    from ingest.types import Document, Segment

    rows = [["Region", "Year", "Revenue"]] + [[f"Region {i}", str(2000 + i % 20), f"{i * 37} kEUR"] for i in range(60)]
    text = "Revenue by region.\n\n" + markdown_table(rows) + "\n\nEnd of report."
    doc = Document("r.docx", "Sales", "docx", [Segment(text, page=3, start_char=0, end_char=len(text))])
    chunks = chunk_document(doc, lambda t: len(t.split()), 100, overlap_tokens=10)
    assert len(chunks) > 3 and all(chunk.n_tokens <= 100 for chunk in chunks)
    for chunk in chunks[1:]:
        assert chunk.text.startswith("| Region | Year | Revenue |\n| --- | --- | --- |\n| Region ")
        assert chunk.page == 3
    body_rows = [line for chunk in chunks for line in chunk.text.split("\n") if line[:10].startswith("| Region ")
                 and line[9].isdigit()]
    expected = [f"| Region {i} | {2000 + i % 20} | {i * 37} kEUR |" for i in range(60)]
    assert list(dict.fromkeys(body_rows)) == expected  # rows whole, in order, none lost (the overlap may repeat one)


_PAGE = """<html><head><title>Quillby Ferry Guide</title></head><body>
<header class="site-header"><a href="/">Home</a><ul class="menu"><li>Timetables</li></ul></header>
<div class="cookie-banner">We use cookies. Accept?</div>
<main><h1>Quillby Ferry Guide</h1><p>The ferry Morrow leaves Quillby at 08:15.</p>
  <aside class="related">Related: Saltmere buses</aside>
  <h2>Fares</h2><p>An adult single costs 4 pounds.</p></main>
<div id="sidebar">Popular posts</div><footer>Copyright Quillby Ferry Company</footer>
</body></html>"""


def test_html_main_content_keeps_headings_and_drops_chrome(tmp_path):
    (doc,) = load_file(write(tmp_path, "guide.html", _PAGE.encode()), "guide.html")
    assert [(seg.section, seg.text) for seg in doc.segments] == [
        ("Quillby Ferry Guide", "The ferry Morrow leaves Quillby at 08:15."),
        ("Quillby Ferry Guide > Fares", "An adult single costs 4 pounds."),
    ]


def test_html_without_landmarks_keeps_its_article_header(tmp_path):
    page = b"<body><div class='navbar'>Home | About</div><article><header><h1>Notes</h1></header>" \
           b"<p>Low tide at 14:02.</p></article><div class='footer'>(c) 2025</div></body>"
    (doc,) = load_file(write(tmp_path, "notes.html", page), "notes.html")
    assert [(seg.section, seg.text) for seg in doc.segments] == [("Notes", "Low tide at 14:02.")]


# --- OCR ---------------------------------------------------------------------------------------------------


@needs_ocr
def test_scanned_pdf_pages_are_read_by_ocr_and_reach_the_metadata(rag, tmp_path):
    (tmp_path / "scans").mkdir()
    shutil.copy(REAL_DOCS / "harbour_survey_scan.pdf", tmp_path / "scans")
    summary = rag.ingest([tmp_path / "scans"])
    assert summary.files.added == 1
    records = [meta for _, meta, _ in rag.store().iter_records()]
    assert {(meta["page"], meta["ocr"]) for meta in records} == {(1, True), (2, True)}


def test_a_good_text_layer_is_not_ocrd():
    (doc,) = load_file(FIXTURES / "docs" / "orchard_survey.pdf", "orchard_survey.pdf")
    assert all("ocr" not in seg.extra for seg in doc.segments)


def test_usable_text_refuses_missing_and_garbage_layers():
    from ingest.loaders.pdf import usable_text

    assert usable_text("The breakwater at Quillby is 340 metres long.")
    assert not usable_text("  3  ")  # a page number over a scan
    assert not usable_text("(cid:12)(cid:7)(cid:44)(cid:3) " * 20)  # glyphs without a Unicode mapping
    assert not usable_text("\ufffd\ufffd!!@@##$$%%^^&&**" * 5)


def test_without_an_engine_scans_and_images_say_what_to_install(tmp_path):
    from ingest.loaders.ocr import use_ocr_engine

    with use_ocr_engine("off"):
        with pytest.raises(LoadError, match=r"^PDF has no text layer \(scanned\?\) and no OCR engine installed"):
            load_file(REAL_DOCS / "harbour_survey_scan.pdf", "scan.pdf")
        with pytest.raises(LoadError, match=r"^no OCR engine installed \(make ocr-deps"):
            load_file(REAL_DOCS / "bait_receipt.png", "bait_receipt.png")


def test_the_ocr_setting_reaches_the_loaders(tmp_path):
    from rag_app.api import RAG
    from rag_app.settings import Settings

    (tmp_path / "scans").mkdir()
    shutil.copy(REAL_DOCS / "bait_receipt.png", tmp_path / "scans")
    rag = RAG(Settings(profile="test", home=tmp_path / "home", ingest={"ocr_engine": "off"}))
    summary = rag.ingest([tmp_path / "scans"])
    assert [f["error"] for f in summary.failed] == [
        "no OCR engine installed (make ocr-deps installs tesseract-ocr; or pip install rapidocr-onnxruntime)"]


def test_corrupt_image_is_named(tmp_path):
    with pytest.raises(LoadError, match=r"^corrupt or unsupported image: "):
        load_file(write(tmp_path, "photo.jpg", b"\xff\xd8\xff not really a jpeg"), "photo.jpg")


@pytest.mark.parametrize("engine", sorted(OCR_ENGINES))
def test_each_installed_engine_reads_the_scan(engine):
    try:
        reader = OCR_ENGINES[engine]()
    except (ImportError, RuntimeError) as exc:
        pytest.skip(f"{engine} is not installed ({exc})")
    from PIL import Image

    from ingest.loaders.ocr import read_image

    text = read_image(reader, Image.open(REAL_DOCS / "bait_receipt.png"))
    assert "mackerel bait cost 27" in " ".join(text.split())

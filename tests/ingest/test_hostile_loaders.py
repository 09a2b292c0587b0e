"""Guards before parsing (issue 28): each hostile class, generated here (bench/hostile_corpus.py), is refused with
a reason that says what happened, or read within bounds, in well under a second or two, in this process."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from ingest.discover import discover
from ingest.loaders import load_file
from ingest.types import Document, LoadError

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))

import hostile_corpus as hc  # noqa: E402


def _load(path: Path) -> list[Document]:
    started = time.monotonic()
    try:
        return load_file(path, path.name)
    finally:
        assert time.monotonic() - started < 5, f"{path.name} took {time.monotonic() - started:.1f} s"


def _text(docs: list[Document]) -> str:
    return "\n".join(seg.text for doc in docs for seg in doc.segments)


@pytest.mark.parametrize("name, build, reason", [
    ("deep.eml", hc.deep_mime, "e-mail nested too deeply or too many parts (5,000 multipart sections, limit 100)"),
    ("huge.png", hc.huge_pixels_png, "image has too many pixels (2,500 MP), over the 100 MP limit for OCR"),
    ("bomb.xlsx", hc.bomb_xlsx, "XLSX part xl/worksheets/sheet1.xml decompresses to 664 MB, over the 512 MB limit"),
    ("body.docx", hc.huge_body_docx, "DOCX part word/document.xml decompresses to 1,024 MB, over the 512 MB limit"),
    ("locked.docx", hc.encrypted_docx, "encrypted DOCX (password required)"),
    ("repeats.ods", hc.repeats_ods, "ODS holds over 2,000,000 cells (repeated cells counted), over the limit"),
])
def test_a_hostile_file_is_refused_with_what_happened(tmp_path, name, build, reason):
    build(tmp_path / name)
    with pytest.raises(LoadError) as caught:
        _load(tmp_path / name)
    assert str(caught.value).startswith(reason), caught.value


def test_a_zip_bomb_under_the_size_limit_is_refused_by_its_ratio(tmp_path):
    hc.huge_body_docx(tmp_path / "small_bomb.docx", mebibytes=200)  # 200 MB in about 0.6 MB
    with pytest.raises(LoadError, match=r"DOCX part word/document.xml compresses [\d,]+:1 \(200 MB\), over the 100:1"):
        _load(tmp_path / "small_bomb.docx")


def test_an_old_binary_office_file_is_not_called_encrypted(tmp_path):
    (tmp_path / "old.docx").write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(2048))
    with pytest.raises(LoadError, match="encrypted or legacy DOCX"):
        _load(tmp_path / "old.docx")


def test_an_xlsx_declaring_a1_to_xfd1048576_reads_its_two_cells(tmp_path):
    hc.far_cell_xlsx(tmp_path / "far.xlsx")
    docs = _load(tmp_path / "far.xlsx")
    assert _text(docs) == "column 16384: last"  # "first" is the header row
    assert docs[0].segments[0].start_line == docs[0].segments[0].end_line == 1_048_576


def test_an_ods_with_repeats_reads_its_real_cells_only(tmp_path):
    rows = ('<table:table-row><table:table-cell office:value-type="string"><text:p>tree</text:p></table:table-cell>'
            '<table:table-cell table:number-columns-repeated="16000"/><table:table-cell office:value-type="string">'
            '<text:p>count</text:p></table:table-cell></table:table-row>'
            '<table:table-row table:number-rows-repeated="1000000"><table:table-cell '
            'table:number-columns-repeated="16384"/></table:table-row>'
            '<table:table-row><table:table-cell office:value-type="string"><text:p>walnut</text:p>'
            '</table:table-cell><table:table-cell table:number-columns-repeated="3" office:value-type="float">'
            '<text:p>12</text:p></table:table-cell></table:table-row>')
    hc.write_ods(tmp_path / "trees.ods", f'<table:table table:name="Trees">{rows}</table:table>')
    docs = _load(tmp_path / "trees.ods")
    assert _text(docs) == "tree: walnut; column 2: 12; column 3: 12; column 4: 12"  # "count" is column 16002
    assert docs[0].segments[0].start_line == 1_000_002  # the empty rows counted, not expanded


def test_deeply_nested_html_is_read_as_flat_text(tmp_path):
    (tmp_path / "deep.html").write_text("<html><body>" + "<div>" * 200_000 + "<p>The heron nests.</p>" + "</div>" * 9)
    docs = _load(tmp_path / "deep.html")
    assert _text(docs) == "The heron nests." and docs[0].kind == "html"
    (tmp_path / "empty.html").write_text("<div>" * 300 + "</div>" * 300)
    with pytest.raises(LoadError, match="no text in HTML \\(nested over 256 levels deep, read as flat text\\)"):
        _load(tmp_path / "empty.html")


def test_html_within_the_depth_limit_keeps_its_sections(tmp_path):
    (tmp_path / "ok.html").write_text("<h1>Birds</h1>" + "<div>" * 200 + "<p>The heron nests.</p>" + "</div>" * 200)
    docs = _load(tmp_path / "ok.html")
    assert docs[0].segments[0].section == "Birds"


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"])
def test_utf16_and_utf32_without_a_bom_are_decoded(tmp_path, encoding):
    text = "Notes on otters\n\nThe sea otter uses a stone to open clams. Ça flotte.\n"
    (tmp_path / "otters.txt").write_bytes(text.encode(encoding))
    assert _text(_load(tmp_path / "otters.txt")) == text.strip()


def test_binary_with_nul_bytes_is_still_binary(tmp_path):
    import random

    rng = random.Random(3)
    (tmp_path / "noise.txt").write_bytes(bytes(rng.randrange(256) for _ in range(5000)))
    with pytest.raises(LoadError, match=r"^binary file \(NUL bytes"):
        _load(tmp_path / "noise.txt")


def test_a_pdf_page_with_a_huge_image_is_never_rendered(tmp_path):
    hc.huge_image_pdf(tmp_path / "scan.pdf")
    with pytest.raises(LoadError, match=r"page 1's image is 35,000 x 35,000 pixels, over the 100 MP limit for OCR"):
        _load(tmp_path / "scan.pdf")


def test_ocr_render_scale_is_capped_for_huge_pages():
    from ingest.loaders.ocr import OCR_DPI
    from ingest.loaders.pdf import MAX_PIXELS, ocr_scale

    assert ocr_scale(612, 792) == OCR_DPI / 72  # a letter page: the usual resolution
    scale = ocr_scale(14_400, 14_400)  # 200 x 200 inches
    assert (14_400 * scale) ** 2 <= MAX_PIXELS * 1.0001


def test_a_15_mb_line_is_chunked_in_seconds(tmp_path):
    from ingest.chunking import chunk_document
    from rag_app.components.embedder import FakeEmbedder

    hc.one_line_txt(tmp_path / "line.txt", megabytes=15)
    docs = _load(tmp_path / "line.txt")
    embedder = FakeEmbedder()
    started = time.monotonic()
    chunks = chunk_document(docs[0], embedder.count_tokens, embedder.max_chunk_tokens, overlap_tokens=0,
                            target_tokens=200)
    assert time.monotonic() - started < 60
    assert all(chunk.n_tokens <= embedder.max_chunk_tokens for chunk in chunks)
    assert sum(len(chunk.text) for chunk in chunks) >= 0.99 * 15_000_000


def test_symlinks_lead_nowhere_outside_the_ingested_folder(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.md").write_text("# Secret\n\nnot for this collection\n")
    (root / "inside.md").write_text("# Inside\n\nfine\n")
    (root / "out.md").symlink_to(outside / "secret.md")
    (root / "outdir").symlink_to(outside)
    (root / "alias.md").symlink_to(root / "inside.md")
    hc.self_loop(root / "selfloop")
    found = discover([root], 10**9)
    assert [f.rel for f in found.files] == ["inside.md"]
    assert {p.path: p.error for p in found.problems} == {
        "out.md": "symlink to a file outside the ingested folder: not followed; ingest that file directly",
        "outdir": "symlink to a folder outside the ingested folder: not followed; ingest that folder directly",
        "selfloop/again": "symlink loop (points at a folder that holds it): not followed",
    }

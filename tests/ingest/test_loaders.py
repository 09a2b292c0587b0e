"""Loaders: every supported type yields the right title and structure; every bad file raises a short LoadError."""

from __future__ import annotations

import importlib.util
import io
import json
from pathlib import Path

import pytest

from ingest.loaders import LOADERS, SUPPORTED_SUFFIXES, Loader, decode_text, is_supported, load_file, loader_for
from ingest.types import LoadError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
DOCS = FIXTURES / "docs"


def _module(name: str):
    spec = importlib.util.spec_from_file_location(f"_fixture_{name}", FIXTURES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


EXPECTED = _module("expected").EXPECTED
make_fixtures = _module("make_fixtures")


def load_one(path: Path, rel: str | None = None):
    docs = load_file(path, rel or path.name)
    assert len(docs) == 1
    return docs[0]


def write(tmp_path: Path, name: str, data: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


# --- the fixture tree -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_loads_with_title_kind_and_phrase(name):
    expected = EXPECTED[name]
    doc = load_one(DOCS / name, f"sub/{name}")
    assert doc.doc_id == f"sub/{name}"
    assert doc.title == expected["title"]
    assert doc.kind == expected["kind"]
    holding = [seg for seg in doc.segments if expected["phrase"] in seg.text]
    assert len(holding) == 1, [seg.text for seg in doc.segments]
    if "section" in expected:
        assert holding[0].section == expected["section"]
    if "page" in expected:
        assert holding[0].page == int(expected["page"])


def test_every_fixture_file_is_described():
    assert {p.name for p in DOCS.iterdir()} == set(EXPECTED)


def test_markdown_sections_lines_and_offsets():
    path = DOCS / "odd_machines.md"
    doc = load_one(path)
    source = path.read_text()
    assert [seg.section for seg in doc.segments] == [
        "Field Notes on Odd Machines",
        "Field Notes on Odd Machines > The zorbulator",
        "Field Notes on Odd Machines > Tidal clocks",
    ]
    lines = source.split("\n")
    for seg in doc.segments:
        assert source[seg.start_char : seg.end_char] == seg.text  # segments are exact slices of the file
        assert "\n".join(lines[seg.start_line - 1 : seg.end_line]) == seg.text
    zorb = doc.segments[1]
    assert (zorb.start_line, zorb.end_line) == (7, 13)
    assert "# This is not a heading" in zorb.text  # a '#' line inside a fenced block is code, not a heading


def test_markdown_heading_levels_front_matter_and_default_title(tmp_path):
    text = "---\ntitle: From Front Matter\n---\nintro\n## A\nbody a\n### A1 ###\nbody a1\n## B\nbody b\n#nospace\n"
    doc = load_one(write(tmp_path, "notes.md", text))
    assert doc.title == "From Front Matter"
    assert [(s.section, s.text) for s in doc.segments] == [
        ("", "intro"), ("A", "body a"), ("A > A1", "body a1"), ("B", "body b\n#nospace"),
    ]
    assert load_one(write(tmp_path, "plain-notes.md", "no headings here\n")).title == "plain-notes"
    assert load_one(write(tmp_path, "h2.md", "## Only h2\ntext\n")).title == "h2"


def test_plain_text_title_and_lines(tmp_path):
    doc = load_one(DOCS / "lantern_society.txt")
    assert doc.title == "Lantern Society Minutes"
    assert (doc.segments[0].start_line, doc.segments[0].end_line) == (1, 6)
    doc = load_one(write(tmp_path, "essay.txt", "\n\nThis first line is a whole sentence that ends with a period.\nMore.\n"))
    assert doc.title == "essay"
    assert doc.segments[0].start_line == 3
    rst = load_one(write(tmp_path, "guide.rst", "User Guide\n==========\n\nInstall it.\n"))
    assert rst.title == "User Guide"


def test_html_drops_navigation_and_scripts():
    doc = load_one(DOCS / "marmot_station.html")
    text = "\n".join(seg.text for seg in doc.segments)
    assert "NAVIGATION LINK TEXT" not in text and "SCRIPT TEXT" not in text and "font-family" not in text
    assert [seg.section for seg in doc.segments] == [
        "Marmot Weather Station",
        "Marmot Weather Station > Station history",
        "Marmot Weather Station > Instruments",
    ]
    assert "- A mercury barometer from 1921\n- A wind vane shaped like a marmot" in doc.segments[2].text  # list items keep their marker
    assert "Rain gauge | 1934" in doc.segments[2].text


def test_html_title_from_h1_when_no_title_tag(tmp_path):
    doc = load_one(write(tmp_path, "page.htm", "<html><body><h1>Big <b>Heading</b></h1><p>Body text.</p></body></html>"))
    assert doc.title == "Big Heading"
    assert doc.segments[0].text == "Body text."


def test_pdf_pages_and_title(tmp_path):
    doc = load_one(DOCS / "orchard_survey.pdf")
    assert [seg.page for seg in doc.segments] == [1, 2]
    assert doc.extra["pages"] == 2
    assert "212 hectares" in doc.segments[0].text and "9,400 crates" in doc.segments[1].text
    untitled = write(tmp_path, "scan-0001.pdf", make_fixtures.minimal_pdf([["Some text on a page."]]))
    assert load_one(untitled).title == "scan-0001"


def test_docx_headings_tables_and_title():
    doc = load_one(DOCS / "submarine_kitchen.docx")
    assert doc.title == "Submarine Kitchen Handbook"
    assert [seg.section for seg in doc.segments] == ["", "Galley rules", "Galley rules > Bread", "Menu"]
    assert "Kelp stew | 310" in doc.segments[-1].text


def test_python_code_split_at_top_level_definitions():
    doc = load_one(DOCS / "orbit_tools.py")
    assert doc.extra == {"language": "python"}
    assert [seg.section for seg in doc.segments] == ["", "class Satellite", "def hohmann_delta_v", ""]
    hohmann = doc.segments[2]
    assert hohmann.text.startswith("# Transfer orbits\ndef hohmann_delta_v")  # the comment above joins its def
    assert (hohmann.start_line, hohmann.end_line) == (19, 24)


def test_python_with_syntax_error_and_decorators(tmp_path):
    doc = load_one(write(tmp_path, "broken.py", "import os\n\ndef ok():\n    return 1\n\ndef broken(:\n    pass\n"))
    assert [seg.section for seg in doc.segments] == ["", "def ok", "def broken"]  # regex fallback
    doc = load_one(write(tmp_path, "deco.py", "@dataclass\nclass A:\n    x: int = 1\n\n\nasync def run():\n    pass\n"))
    assert [(s.section, s.start_line) for s in doc.segments] == [("class A", 1), ("def run", 6)]


@pytest.mark.parametrize(
    ("name", "source", "sections"),
    [
        ("app.js", "import x from 'y';\n\n// Adds.\nexport function add(a, b) {\n  return a + b;\n}\n\nclass Box {\n}\n",
         ["", "function add", "class Box"]),
        ("main.go", "package main\n\nfunc main() {\n}\n\nfunc (s *Server) Serve() error {\n\treturn nil\n}\n",
         ["", "func main", "func Serve"]),
        ("lib.rs", "use std::io;\n\npub fn parse() {}\n\nimpl Parser for Thing {\n}\n", ["", "fn parse", "impl Parser"]),
        ("util.c", "#include <stdio.h>\n\nstatic int add(int a, int b) {\n  return a + b;\n}\n", ["", "add()"]),
        ("query.sql", "CREATE TABLE users (id int);\nSELECT 1;\n", ["create table users"]),
        ("notes.lua", "x = 1\n", [""]),
    ],
)
def test_other_languages_split_with_a_light_regex(tmp_path, name, source, sections):
    doc = load_one(write(tmp_path, name, source))
    assert doc.kind == "code"
    assert [seg.section for seg in doc.segments] == sections
    assert doc.title == name


def test_notebook_cells_sections_and_no_outputs():
    doc = load_one(DOCS / "bramblewood_bees.ipynb")
    assert doc.extra["language"] == "python"
    text = "\n".join(seg.text for seg in doc.segments)
    assert "OUTPUT TEXT" not in text
    assert len(doc.segments) == 4
    assert doc.segments[2].text.startswith("hives = 48")
    assert doc.segments[2].section == "Beekeeping analysis > Honey yield"


def test_csv_rows_carry_their_header_and_group(tmp_path):
    doc = load_one(DOCS / "lighthouses.csv")
    first = doc.segments[0].text.split("\n")
    assert first[0] == "name: Skerry Point; location: Isle of Quorra; height_m: 38; keeper: Mirabel Finch"
    assert first[2].endswith("keeper: Petra Vane, retired")  # a quoted comma stays inside its cell
    rows = "\n".join(f"r{i};{i * 2}" for i in range(45))
    doc = load_one(write(tmp_path, "big.csv", "key;value\n" + rows + "\n"))
    assert [(s.start_line, s.end_line) for s in doc.segments] == [(2, 21), (22, 41), (42, 46)]
    assert doc.segments[1].text.split("\n")[0] == "key: r20; value: 40"
    tsv = load_one(write(tmp_path, "t.tsv", "a\tb\n1\t2\n"))
    assert tsv.segments[0].text == "a: 1; b: 2"


def test_jsonl_corpus_one_document_per_record(tmp_path):
    lines = [
        json.dumps({"_id": 4983, "title": "White matter", "text": "Diffusion tensor imaging of newborns."}),
        "",
        json.dumps({"_id": "x2", "title": "", "text": "Second abstract.", "metadata": {}}),
    ]
    docs = load_file(write(tmp_path, "corpus.jsonl", "\n".join(lines) + "\n"), "scifact/corpus.jsonl")
    assert [(d.doc_id, d.title, d.kind) for d in docs] == [("4983", "White matter", "jsonl"), ("x2", "", "jsonl")]
    assert docs[0].segments[0].text == "Diffusion tensor imaging of newborns."
    assert docs[1].segments[0].start_line == 3


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ('{"_id": "1", "text": "ok"}\n{"_id": "2", "text": \n', "invalid JSON on line 2"),
        ('{"_id": "1", "text": "ok"}\n{"id": "2"}\n', "line 2 has no '_id' and 'text'"),
    ],
)
def test_jsonl_malformed_line_is_named(tmp_path, content, reason):
    with pytest.raises(LoadError, match=reason):
        load_file(write(tmp_path, "corpus.jsonl", content), "corpus.jsonl")


def test_jsonl_of_five_thousand_abstracts_loads_every_record(tmp_path):
    abstract = "Alterations of the architecture of cerebral white matter in the developing brain. " * 18
    path = write(tmp_path, "corpus.jsonl", "".join(
        json.dumps({"_id": str(i), "title": f"Title {i}", "text": abstract, "metadata": {}}) + "\n"
        for i in range(5183)
    ))
    assert path.stat().st_size > 7_000_000
    docs = load_file(path, "corpus.jsonl")  # speed is measured in bench/, not asserted here
    assert len(docs) == 5183
    assert [d.doc_id for d in docs[:3]] == ["0", "1", "2"] and docs[-1].title == "Title 5182"


# --- decoding and failures --------------------------------------------------------------------------------


def test_decoding_variants(tmp_path):
    assert load_one(write(tmp_path, "bom.txt", b"\xef\xbb\xbfhello bom\r\nline two")).segments[0].text == (
        "hello bom\nline two"
    )
    assert load_one(write(tmp_path, "u16.txt", "caf\u00e9 in utf-16".encode("utf-16"))).segments[0].text == (
        "caf\u00e9 in utf-16"
    )
    latin = load_one(write(tmp_path, "latin.txt", "Caf\u00e9 cr\u00e8me br\u00fbl\u00e9e, na\u00efve.".encode("latin-1")))
    assert latin.segments[0].text == "Caf\u00e9 cr\u00e8me br\u00fbl\u00e9e, na\u00efve."
    smart = load_one(write(tmp_path, "cp.txt", "\u201cquoted\u201d \u2013 dash".encode("cp1252")))
    assert smart.segments[0].text == "\u201cquoted\u201d \u2013 dash"


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("empty.txt", b"", "empty file"),
        ("blank.md", b"  \n\n\t\n", "no text"),
        ("image.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), "binary file (NUL bytes)"),
        ("garbage.txt", bytes((i * 37 + 11) % 256 for i in range(2000)).replace(b"\x00", b"\x01"),
         "not valid UTF-8 text"),
        ("mojibake.txt", "\u0416\u0443\u0440\u043d\u0430\u043b \u043d\u0430\u0431\u043b\u044e\u0434\u0435\u043d\u0438\u0439"
         .encode("koi8-r"), "not valid UTF-8 text"),
        ("bad.pdf", b"%PDF-1.4\nthis is not really a pdf at all\n%%EOF", "corrupt PDF: "),
        ("notes.pdf", b"hello, I am plain text", "corrupt PDF: "),
        ("bad.docx", b"PK but not a zip", "corrupt DOCX"),
        ("archive.zip", b"PK\x03\x04", "unsupported file type '.zip'"),
        ("Makefile", b"all:\n", "unsupported file type"),
        ("bad.ipynb", b"{not json", "invalid notebook JSON"),
    ],
)
def test_bad_files_raise_load_error(tmp_path, name, data, reason):
    with pytest.raises(LoadError) as info:
        load_file(write(tmp_path, name, data), name)
    assert str(info.value).startswith(reason)


def test_docx_zip_without_document_is_corrupt(tmp_path):
    raw = io.BytesIO()
    import zipfile

    with zipfile.ZipFile(raw, "w") as archive:
        archive.writestr("hello.txt", "not a word document")
    with pytest.raises(LoadError, match="corrupt DOCX"):
        load_file(write(tmp_path, "fake.docx", raw.getvalue()), "fake.docx")


def _encrypted_pdf(user_password: str) -> bytes:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(DOCS / "orchard_survey.pdf"))
    writer.encrypt(user_password=user_password, owner_password="owner-secret", algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_encrypted_pdf_needs_password(tmp_path):
    with pytest.raises(LoadError, match=r"^encrypted PDF \(password required\)$"):
        load_file(write(tmp_path, "locked.pdf", _encrypted_pdf("secret")), "locked.pdf")


def test_encrypted_pdf_with_empty_password_opens(tmp_path):
    doc = load_one(write(tmp_path, "owner-only.pdf", _encrypted_pdf("")))
    assert [seg.page for seg in doc.segments] == [1, 2]
    assert "Velvet Pippin" in doc.segments[0].text


def test_pdf_without_text_layer(tmp_path):
    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(width=612, height=792)
    out = io.BytesIO()
    writer.write(out)
    with pytest.raises(LoadError, match=r"PDF has no text layer \(scanned\?\)"):
        load_file(write(tmp_path, "scan.pdf", out.getvalue()), "scan.pdf")


def test_supported_suffixes():
    for suffix in (".md", ".txt", ".html", ".htm", ".pdf", ".docx", ".py", ".ipynb", ".csv", ".tsv", ".jsonl", ".rs"):
        assert suffix in SUPPORTED_SUFFIXES
        assert is_supported(Path(f"x{suffix.upper()}"))
    assert not is_supported("photo.bmp") and not is_supported("Makefile") and not is_supported("old.doc")


def test_decode_text_rejects_nul_but_accepts_utf16():
    with pytest.raises(LoadError, match="binary"):
        decode_text(b"abc\x00def")
    assert decode_text("x\u00e9".encode("utf-16")) == "x\u00e9"


def test_markdown_setext_headings(tmp_path):
    text = "My Project\n==========\n\nIntro text.\n\nUsage\n-----\n\nRun it.\n\n- item\n---\n"
    doc = load_one(write(tmp_path, "README.md", text))
    assert doc.title == "My Project"
    assert [(s.section, s.text, s.start_line) for s in doc.segments] == [
        ("My Project", "Intro text.", 4), ("My Project > Usage", "Run it.\n\n- item\n---", 9),
    ]


def test_html_preformatted_text_keeps_indentation(tmp_path):
    html = "<h2>Code</h2><p>Example:</p><pre><code>def f():\n    return 1\n</code></pre><p>After.</p>"
    doc = load_one(write(tmp_path, "a.html", html))
    assert doc.segments[0].text == "Example:\n\ndef f():\n    return 1\n\nAfter."


def test_config_files_are_one_segment(tmp_path):
    doc = load_one(write(tmp_path, "config.yaml", "type: model\nname: vae\nlayers:\n  - 64\n"))
    assert doc.kind == "code" and doc.extra == {"language": "yaml"}
    assert [(s.section, s.start_line, s.end_line) for s in doc.segments] == [("", 1, 4)]


def test_registry_maps_every_supported_suffix_to_one_loader():
    claimed = [suffix for loader in LOADERS for suffix in loader.suffixes]
    assert len(claimed) == len(set(claimed)), "a suffix belongs to one loader only"
    assert set(claimed) == SUPPORTED_SUFFIXES
    for suffix in SUPPORTED_SUFFIXES:
        loader = loader_for(f"notes/file{suffix.upper()}")
        assert isinstance(loader, Loader) and suffix in loader.suffixes
    kinds = {type(loader).__name__ for loader in (loader_for(f"x{s}") for s in (".md", ".txt", ".csv", ".tsv"))}
    assert kinds == {"MarkdownLoader", "PlainTextLoader", "TabularLoader"}


def test_unknown_suffix_is_skipped_with_a_reason(tmp_path):
    from ingest.discover import discover

    write(tmp_path, "notes.md", "# Notes\n\nkept\n")
    write(tmp_path, "photo.xyz", "not a format we read")
    assert loader_for("photo.xyz") is None
    found = discover([tmp_path], max_bytes=1_000_000)
    assert [f.rel for f in found.files] == ["notes.md"]
    assert [(p.path, p.error) for p in found.skipped] == [("photo.xyz", "unsupported file type '.xyz'")]
    with pytest.raises(LoadError, match=r"^unsupported file type '\.xyz'$"):
        load_file(tmp_path / "photo.xyz", "photo.xyz")

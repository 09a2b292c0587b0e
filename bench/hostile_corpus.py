"""A hostile corpus, generated (never committed): one file per class of input that once stopped, stalled or
exhausted `rag ingest` (issue 28), beside ordinary files holding facts.

Used by `bench/hostile_bench.py` (before/after figures per class) and by `tests/reliability/test_hostile_files.py`.
Every file is built in a second or less: the zip bombs are written as one small compressed block repeated (a
deflate block ended by a full flush depends on nothing before it), so nothing big is ever compressed or held.

    python bench/hostile_corpus.py OUT_DIR     # writes the corpus into OUT_DIR
"""

from __future__ import annotations

import io
import os
import struct
import sys
import zlib
from collections.abc import Callable
from pathlib import Path

# file (or folder) name -> what a user must be told, as a word the reason contains (lower case)
HOSTILE = {
    "deep_mime.eml": "nested",
    "huge_pixels.png": "pixels",
    "selfloop/again": "symlink",
    "nested.html": "",  # deeply nested but text-free: "no text", or ingested if it holds text
    "repeats.ods": "",  # its few real cells are ingested, the repeats are not expanded
    "far_cell.xlsx": "",  # A1 and XFD1048576: two cells, ingested
    "bomb.xlsx": "compress",  # zip bomb: refused before reading
    "one_line.txt": "",  # 15 MB on one line: ingested
    "huge_body.docx": "compress",  # a 1 GiB document.xml: refused before reading
    "encrypted.docx": "encrypted docx",
    "utf16.txt": "",  # UTF-16 without BOM: decoded and ingested
    "huge_image.pdf": "",  # a page holding a 35,000 px image: never rendered whole
}

# ordinary files: name -> a phrase their stored text holds
ORDINARY = {
    "facts/heron.md": "grey heron nests in the old mill",
    "facts/otter.txt": "river otter eats crayfish",
    "facts/kestrel.html": "kestrel hovers over the verge",
    "facts/ledger.xlsx": "walnut",
    "facts/memo.docx": "the ferry leaves at nine",
}


# -- a zip writer that takes pre-compressed (raw deflate) entries -------------------------------------------------
class _Entry:
    def __init__(self, name: str, raw: bytes, crc: int, size: int, stored: bool = False):
        self.name, self.raw, self.crc, self.size, self.stored = name.encode(), raw, crc, size, stored


def _deflated(data: bytes, name: str) -> _Entry:
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    return _Entry(name, packer.compress(data) + packer.flush(), zlib.crc32(data), len(data))


def _repeated(name: str, head: bytes, block: bytes, times: int, tail: bytes) -> _Entry:
    """head + block * times + tail, deflated without ever holding or compressing it whole."""
    raw = bytearray()
    for part in (head, block, tail):
        packer = zlib.compressobj(9, zlib.DEFLATED, -15)
        piece = packer.compress(part) + packer.flush(zlib.Z_FULL_FLUSH)
        raw += piece * (times if part is block else 1)
    crc = zlib.crc32(head)
    for _ in range(times):
        crc = zlib.crc32(block, crc)
    crc = zlib.crc32(tail, crc)
    raw += b"\x03\x00"  # an empty final block
    return _Entry(name, bytes(raw), crc, len(head) + len(block) * times + len(tail))


def _write_zip(path: Path, entries: list[_Entry]) -> None:
    out = bytearray()
    central = bytearray()
    for entry in entries:
        method = 0 if entry.stored else 8
        offset = len(out)
        sizes = (entry.crc & 0xFFFFFFFF, len(entry.raw), entry.size)
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, method, 0, 0x21, *sizes, len(entry.name), 0)
        out += entry.name + entry.raw
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, method, 0, 0x21, *sizes,
                               len(entry.name), 0, 0, 0, 0, 0, offset)
        central += entry.name
    start = len(out)
    out += central
    out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(entries), len(entries), len(central), start, 0)
    path.write_bytes(bytes(out))


def _zip_entries(data: bytes) -> list[_Entry]:
    import zipfile

    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return [_Entry(info.filename, archive.read(info.filename), 0, 0) for info in archive.infolist()]


def _rezip(path: Path, template: bytes, replace: dict[str, _Entry]) -> None:
    """The template archive's entries, with some replaced (the mimetype entry kept first and stored)."""
    entries = []
    for entry in _zip_entries(template):
        name = entry.name.decode()
        if name in replace:
            entries.append(replace[name])
        elif name == "mimetype":
            entries.append(_Entry(name, entry.raw, zlib.crc32(entry.raw), len(entry.raw), stored=True))
        else:
            entries.append(_deflated(entry.raw, name))
    _write_zip(path, entries)


# -- the hostile files -------------------------------------------------------------------------------------------
def deep_mime(path: Path, depth: int = 5000) -> None:
    head = ["From: ada@example.com", "To: bo@example.com", "Subject: nested", "MIME-Version: 1.0"]
    lines = list(head)
    for level in range(depth):
        lines += [f'Content-Type: multipart/mixed; boundary="b{level}"', "", f"--b{level}"]
    lines += ["Content-Type: text/plain", "", "The deepest part.", ""]
    for level in reversed(range(depth)):
        lines += [f"--b{level}--", ""]
    path.write_text("\n".join(lines))


def huge_pixels_png(path: Path, side: int = 50_000) -> None:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)  # 8-bit grey
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 1024))
                     + chunk(b"IEND", b""))


def self_loop(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "again").symlink_to(Path("..") / folder.name)  # a folder symlink to its own folder


def nested_html(path: Path, depth: int = 200_000) -> None:
    path.write_text("<html><body>" + "<div>" * depth + "x" + "</div>" * 16 + "</body></html>")


_ODS_NS = ('xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
           'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
           'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"')


def write_ods(path: Path, tables: str) -> None:
    """A minimal ODS spreadsheet holding `tables` (`<table:table>` elements)."""
    content = (f'<?xml version="1.0" encoding="UTF-8"?><office:document-content {_ODS_NS} office:version="1.2">'
               f'<office:body><office:spreadsheet>{tables}</office:spreadsheet></office:body>'
               '</office:document-content>')
    manifest = ('<?xml version="1.0" encoding="UTF-8"?><manifest:manifest '
                'xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" manifest:version="1.2">'
                '<manifest:file-entry manifest:full-path="/" '
                'manifest:media-type="application/vnd.oasis.opendocument.spreadsheet"/>'
                '<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/>'
                '</manifest:manifest>')
    mimetype = b"application/vnd.oasis.opendocument.spreadsheet"
    _write_zip(path, [_Entry("mimetype", mimetype, zlib.crc32(mimetype), len(mimetype), stored=True),
                      _deflated(manifest.encode(), "META-INF/manifest.xml"),
                      _deflated(content.encode(), "content.xml")])


def repeats_ods(path: Path, rows: int = 20) -> None:
    """845 bytes whose repeat attributes declare 20 x 1,048,576 rows of 16,384 cells."""
    row = ('<table:table-row table:number-rows-repeated="1048576"><table:table-cell '
           'table:number-columns-repeated="16384" office:value-type="string"><text:p>boom</text:p>'
           '</table:table-cell></table:table-row>')
    write_ods(path, '<table:table table:name="Sheet1"><table:table-row><table:table-cell office:value-type="string">'
                    '<text:p>name</text:p></table:table-cell></table:table-row>' + row * rows + '</table:table>')


def _xlsx_bytes(cells: dict[str, object]) -> bytes:
    import openpyxl

    book = openpyxl.Workbook()
    for ref, value in cells.items():
        book.active[ref] = value
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def far_cell_xlsx(path: Path) -> None:
    path.write_bytes(_xlsx_bytes({"A1": "first", "XFD1048576": "last"}))


def bomb_xlsx(path: Path, rows: int = 330_000) -> None:
    """About 33 million cells (100 a row) in a file of about 1 MB."""
    head = (b'<?xml version="1.0" encoding="UTF-8"?><worksheet '
            b'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>')
    block = b"<row>" + b'<c t="n"><v>1</v></c>' * 100 + b"</row>"
    per = 100
    _rezip(path, _xlsx_bytes({"A1": 1}),
           {"xl/worksheets/sheet1.xml": _repeated("xl/worksheets/sheet1.xml", head, block * per, rows // per,
                                                  b"</sheetData></worksheet>")})


def one_line_txt(path: Path, megabytes: int = 15) -> None:
    words = "the quick brown fox jumps over the lazy dog while the otter sleeps "
    path.write_text((words * (megabytes * 1_000_000 // len(words) + 1))[: megabytes * 1_000_000])


def huge_body_docx(path: Path, mebibytes: int = 1024) -> None:
    import docx

    template = io.BytesIO()
    document = docx.Document()
    document.add_paragraph("x")
    document.save(template)
    head = (b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document '
            b'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>')
    para = b"<w:p><w:r><w:t>lorem ipsum dolor sit amet</w:t></w:r></w:p>"
    block = para * ((1 << 20) // len(para))
    times = mebibytes * (1 << 20) // len(block)
    _rezip(path, template.getvalue(),
           {"word/document.xml": _repeated("word/document.xml", head, block, times, b"</w:body></w:document>")})


def encrypted_docx(path: Path) -> None:
    """What Word writes for a password-protected .docx: an OLE compound file (not a zip) whose streams are
    EncryptionInfo and EncryptedPackage (the directory entries' names are UTF-16LE)."""
    header = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(16) + struct.pack("<HHHH", 0x3E, 3, 0xFFFE, 9)
    header = header.ljust(512, b"\x00")
    names = ["Root Entry", "EncryptionInfo", "EncryptedPackage", "\x06DataSpaces"]
    directory = b"".join(name.encode("utf-16-le").ljust(64, b"\x00") + struct.pack("<H", 2 * len(name) + 2)
                         + bytes(62) for name in names)
    path.write_bytes(header + directory.ljust(512, b"\x00") + os.urandom(4096))


def utf16_txt(path: Path) -> None:
    text = "Notes on otters\n\nThe sea otter uses a stone to open clams.\nIt floats on its back while it eats.\n"
    path.write_bytes(text.encode("utf-16-le"))


def huge_image_pdf(path: Path, side: int = 35_000) -> None:
    """One page holding a 1-bit image of side x side pixels (all zeros, deflated) and no text layer."""
    row = (side + 7) // 8
    block = bytes(row * 100)
    image = _repeated("x", b"", block, side // 100, bytes(row * (side % 100)))
    stream = b"\x78\x9c" + image.raw + struct.pack(">I", _adler_of_zeros(image.size))
    content = b"q 612 0 0 792 0 0 cm /Im0 Do Q"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /XObject << /Im0 4 0 R >> >> "
        b"/Contents 5 0 R >>",
        b"<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceGray /BitsPerComponent 1 "
        b"/Filter /FlateDecode /Length %d >>\nstream\n" % (side, side, len(stream)) + stream + b"\nendstream",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.7\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    path.write_bytes(bytes(out))


def _adler_of_zeros(n: int) -> int:
    """Adler-32 of n zero bytes (a = 1, b = n mod 65521)."""
    return ((n % 65521) << 16) | 1


# -- the ordinary files --------------------------------------------------------------------------------------------
def ordinary(root: Path) -> None:
    import docx

    folder = root / "facts"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "heron.md").write_text("# Herons\n\nThe grey heron nests in the old mill by the weir.\n")
    (folder / "otter.txt").write_text("Otters\n\nThe river otter eats crayfish and eels.\n")
    (folder / "kestrel.html").write_text("<html><head><title>Kestrels</title></head><body><h1>Kestrels</h1>"
                                         "<p>The kestrel hovers over the verge before it drops.</p></body></html>")
    (folder / "ledger.xlsx").write_bytes(_xlsx_bytes({"A1": "tree", "B1": "count", "A2": "walnut", "B2": 12}))
    memo = docx.Document()
    memo.add_heading("Memo", 1)
    memo.add_paragraph("Remember that the ferry leaves at nine from the north pier.")
    memo.save(folder / "memo.docx")


#: name -> how to write it (into the corpus folder)
BUILDERS: dict[str, Callable[[Path], None]] = {
    "deep_mime.eml": deep_mime,
    "huge_pixels.png": huge_pixels_png,
    "selfloop/again": lambda path: self_loop(path.parent),
    "nested.html": nested_html,
    "repeats.ods": repeats_ods,
    "far_cell.xlsx": far_cell_xlsx,
    "bomb.xlsx": bomb_xlsx,
    "one_line.txt": one_line_txt,
    "huge_body.docx": huge_body_docx,
    "encrypted.docx": encrypted_docx,
    "utf16.txt": utf16_txt,
    "huge_image.pdf": huge_image_pdf,
}


def build(root: Path, names: list[str] | None = None) -> dict[str, Path]:
    """Write the hostile files (all, or those named) and the ordinary ones under `root`; name -> the path to
    ingest for that class (for the self-loop: its folder)."""
    root.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name in names or list(BUILDERS):
        BUILDERS[name](root / name)
        paths[name] = root / name.split("/")[0]
    ordinary(root)
    return paths


if __name__ == "__main__":
    for name, path in build(Path(sys.argv[1])).items():
        print(f"{name}: {path.stat().st_size if path.is_file() else 'folder'}")

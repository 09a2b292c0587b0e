"""A PDF page's text layer as lines with their place and type size, read by pdfium (pypdfium2).

pdfium gives the characters in the page's content order (for TeX and most producers, column by column, the order
a person reads), breaks lines with "\\r\\n", and already joins a word hyphenated at a line end, marking the hyphen
(`FPDFText_IsHyphen`, given as U+0002, or U+FFFE by `get_text_range`); elsewhere U+FFFE is a glyph it could not
map. Each line keeps the box and
the type size and weight of its first characters: what the cleaning (`pdf_text`) and headings (`pdf_headings`)
need.
"""

from __future__ import annotations

import ctypes
import re
from dataclasses import dataclass

from ingest.loaders.vocabulary import LINE_END_HYPHEN

#: Font names of bold faces (after the subset prefix): Times "Medi", Computer Modern "CMBX", "Bold", ...
_BOLD_FONT = re.compile(r"bold|black|heavy|semibold|demi|medi|cmbx|-bx|\bbx", re.IGNORECASE)
#: A space pdfium put between a small capital's big initial and its smaller letters ("A DAM" for "ADAM").
_CAPS_GAP = re.compile(r"(?<=[A-Z]) (?=[A-Z])")


@dataclass
class Line:
    """One line of a page, top-down coordinates in points (0 at the page's top)."""

    text: str
    left: float
    right: float
    top: float
    bottom: float
    size: float  # the type size, as the height of the first letters' boxes
    bold: bool
    page_height: float
    page_width: float


def page_lines(page) -> list[Line]:
    """The lines of a pypdfium2 `PdfPage`, in pdfium's reading order; [] when it has no text layer."""
    import pypdfium2.raw as pdfium_c

    textpage = page.get_textpage()
    try:
        count = textpage.count_chars()
        if count <= 0:
            return []
        raw = textpage.raw
        text = _characters(raw, count)
        width, height = page.get_size()
        chars = list(text)
        for index, char in enumerate(chars):
            if char in "\x02\ufffe":  # pdfium's mark of a line-end hyphen (not always flagged), or an unmapped glyph
                between_letters = 0 < index < count - 1 and text[index - 1].isalpha() and text[index + 1].isalpha()
                hyphen = between_letters or pdfium_c.FPDFText_IsHyphen(raw, index)
                chars[index] = LINE_END_HYPHEN if hyphen else ""
        for match in _CAPS_GAP.finditer(text):
            index = match.start()
            if _height(raw, index - 1) > 1.15 * _height(raw, index + 1) > 0:
                chars[index] = ""
        lines: list[Line] = []
        start = 0
        for match in re.finditer(r"\r\n|\n|\r", text):
            _add_line(lines, raw, chars, start, match.start(), width, height)
            start = match.end()
        _add_line(lines, raw, chars, start, count, width, height)
        return lines
    finally:
        textpage.close()


def _characters(raw, count: int) -> str:
    """One character per index: a character outside the BMP comes as two UTF-16 halves, joined into the first
    index (the second becomes a space no word is split at: NUL, dropped with the other control characters)."""
    import pypdfium2.raw as pdfium_c

    codes = [pdfium_c.FPDFText_GetUnicode(raw, index) or 32 for index in range(count)]
    for index, code in enumerate(codes):
        if 0xD800 <= code <= 0xDBFF and index + 1 < count and 0xDC00 <= codes[index + 1] <= 0xDFFF:
            codes[index], codes[index + 1] = 0x10000 + ((code - 0xD800) << 10) + (codes[index + 1] - 0xDC00), 0
        elif 0xD800 <= code <= 0xDFFF:
            codes[index] = 0
    return "".join(map(chr, codes))


def _add_line(lines: list[Line], raw, chars: list[str], start: int, end: int, width: float, height: float) -> None:
    line_text = "".join(chars[start:end])
    if not line_text.strip():
        return
    first = start + len(line_text) - len(line_text.lstrip())  # first visible character (chars may hold "")
    while first < end and not chars[first].strip():
        first += 1
    last = end - 1
    while last > first and not chars[last].strip():
        last -= 1
    left, _, bottom, top = _box(raw, first)
    _, right, last_bottom, _ = _box(raw, last)  # a line pdfium joined at a hyphen ends one line lower
    bottom = min(bottom, last_bottom)
    probe = [i for i in range(first, min(end, first + 12)) if chars[i].strip()]
    sizes = sorted(_height(raw, i) for i in probe)
    size = sizes[len(sizes) // 2] if sizes else 0.0
    lines.append(Line(text=line_text, left=left, right=right, top=height - top, bottom=height - bottom,
                      size=round(size, 1), bold=_is_bold(raw, probe[len(probe) // 2] if probe else first)
                      and _is_bold(raw, last),  # the whole line: a bold run-in head starts a body line
                      page_height=height, page_width=width))


def _box(raw, index: int) -> tuple[float, float, float, float]:
    import pypdfium2.raw as pdfium_c

    left, right, bottom, top = (ctypes.c_double() for _ in range(4))
    pdfium_c.FPDFText_GetCharBox(raw, index, ctypes.byref(left), ctypes.byref(right), ctypes.byref(bottom),
                                 ctypes.byref(top))
    return left.value, right.value, bottom.value, top.value


def _height(raw, index: int) -> float:
    """A character's type size: its loose box (the font's ascent to descent) height, which a scaled text matrix
    does not hide (`FPDFText_GetFontSize` says 1.0 for every character of some files)."""
    import pypdfium2.raw as pdfium_c

    rect = pdfium_c.FS_RECTF()
    if not pdfium_c.FPDFText_GetLooseCharBox(raw, index, ctypes.byref(rect)):
        return 0.0
    return abs(rect.top - rect.bottom)


_FONT_NAME = ctypes.create_string_buffer(256)


def _is_bold(raw, index: int) -> bool:
    import pypdfium2.raw as pdfium_c

    if pdfium_c.FPDFText_GetFontWeight(raw, index) >= 600:
        return True
    flags = ctypes.c_int()
    if not pdfium_c.FPDFText_GetFontInfo(raw, index, _FONT_NAME, len(_FONT_NAME), ctypes.byref(flags)):
        return False
    name = _FONT_NAME.value.decode("latin-1").split("+")[-1]
    return bool(_BOLD_FONT.search(name))


def text_lines(text: str, width: float = 612.0, height: float = 792.0) -> list[Line]:
    """Lines without places or sizes (text pdfium could not place, or another extractor's): read in order, never
    taken for headings or page furniture."""
    return [Line(text=line, left=0.0, right=width, top=height / 2, bottom=height / 2, size=0.0, bold=False,
                 page_height=height, page_width=width)
            for line in re.split(r"\r\n|\n|\r", text) if line.strip()]

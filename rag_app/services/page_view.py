"""The cited place, shown: a PDF page rendered as an image with the cited sentences highlighted.

`cited_pdf` finds the file a source came from in the collection's own metadata (the only files this module will
open are ones the ingest service stored, so a card can never be made to render an arbitrary path) and says why not
when it cannot: the chunk is not from a PDF, the file is gone. `render_page` draws the page (pypdfium2) and lays a
translucent box over each cited sentence:

- a page with a text layer: the sentence is found among the page's characters (compared by letters and digits
  only, so line breaks, hyphenation and spacing do not matter; a near match is accepted when the text layer reads
  a little differently from pypdf's extraction) and boxed with pdfium's text rectangles;
- an OCR'd page (`ocr=True` in the chunk metadata): the page is OCR'd again as at ingest (about a second a page
  with tesseract; the UI caches the result) and the sentence found among the engine's word boxes (tesseract) or
  line boxes (rapidocr); with no OCR engine installed the page is shown without highlight and the note says so.

pypdfium2 and PIL are imported inside the functions: `import rag_app` stays cheap.
"""

from __future__ import annotations

import difflib
import io
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rag_app.services.protocols import ReadsChunks

#: Pages are shown at this resolution (pixels per inch); 110 fits a card's width and keeps 10 pt text legible.
DISPLAY_DPI = 110
#: The highlight: translucent yellow (RGBA).
HIGHLIGHT = (255, 214, 0, 110)
#: A near match must cover this share of the sentence's letters and digits, in blocks of at least `MIN_BLOCK`.
NEAR_MATCH_SHARE = 0.6
MIN_BLOCK = 4


@dataclass(frozen=True)
class CitedFile:
    """Where a cited PDF chunk lives: the file (None when it cannot be shown) and, if so, why not."""

    path: Path | None
    page: int | None
    ocr: bool = False
    reason: str = ""


@dataclass(frozen=True)
class PageView:
    """A rendered page: PNG bytes, the highlight boxes in its pixels (left, top, right, bottom) and a note for the
    reader when something could not be highlighted."""

    png: bytes
    width: int
    height: int
    page: int
    boxes: tuple[tuple[int, int, int, int], ...] = ()
    note: str = ""
    found: int = 0  # how many of the sentences were found on the page
    wanted: int = 0

    @property
    def highlighted(self) -> bool:
        return bool(self.boxes)


def cited_pdf(store: ReadsChunks, source: str, page: int | None, text: str,
              locator: dict[str, Any] | None = None) -> CitedFile:
    """The PDF a source card's chunk comes from, looked up in the collection's metadata.

    Args:
        store: the collection the answer came from.
        source: the source's `source` (its path relative to the ingested folder, as stored).
        page: the source's page (1-based).
        text: the chunk's text: picks the right file when two ingested folders hold the same relative name.
        locator: the source's locator (gives `ocr`).

    Returns:
        The file to render, or `path=None` with the reason it cannot be.
    """
    ocr = bool((locator or {}).get("ocr"))
    if not source.lower().endswith(".pdf") or page is None:
        return CitedFile(None, page, ocr, "only PDF pages can be shown")
    found = store.get_where({"$and": [{"source": source}, {"page": int(page)}]}, include_documents=True)
    records = list(zip(found.get("metadatas") or [], found.get("documents") or []))
    if not records:
        return CitedFile(None, page, ocr, f"{source} is no longer in this collection")
    meta = next((meta for meta, doc in records if doc == text), records[0][0])
    file = Path(str(meta.get("path", "")))
    # A chunk from LangChain documents names a source the app never read itself: not shown.
    if meta.get("origin") or meta.get("kind") != "pdf" or not file.is_absolute() or file.suffix.lower() != ".pdf":
        return CitedFile(None, page, ocr, f"{source} was not ingested from a PDF file on this machine")
    if not file.is_file():
        return CitedFile(None, page, ocr, f"the file {file} no longer exists: re-ingest it to see its pages")
    return CitedFile(file, int(page), ocr)


def sentences_of(text: str, spans: Sequence[Sequence[int]]) -> list[str]:
    """The cited sentences: `text[start:end]` for each span in range, in order, without repeats."""
    out: list[str] = []
    for start, end in spans:
        if 0 <= start < end <= len(text):
            sentence = " ".join(text[start:end].split())
            if sentence and sentence not in out:
                out.append(sentence)
    return out


def render_page(path: str | Path, page: int, sentences: Sequence[str] = (), *, ocr: bool = False,
                ocr_engine: str = "auto", dpi: int = DISPLAY_DPI) -> PageView:
    """Page `page` (1-based) of the PDF at `path` as a PNG, with `sentences` highlighted where they are found.

    Args:
        path: a PDF file (callers get it from `cited_pdf`, which only gives ingested files).
        page: 1-based page number.
        sentences: the text to highlight (each found on its own).
        ocr: the page was read by OCR at ingest: find the sentences among OCR word boxes.
        ocr_engine: the engine to read it with, as the `ingest.ocr_engine` setting names it.
        dpi: display resolution.

    Raises:
        RagError: the file cannot be opened as a PDF, or has no such page.
    """
    import pypdfium2 as pdfium

    from rag_app.errors import RagError

    try:
        document = pdfium.PdfDocument(str(path))
    except Exception as exc:  # noqa: BLE001 - pdfium raises PdfiumError for any unreadable file
        raise RagError(f"cannot open {path} as a PDF ({exc}): re-ingest it or check the file") from exc
    try:
        if not 1 <= page <= len(document):
            raise RagError(f"{path} has {len(document)} pages, not a page {page}: re-ingest the file")
        pdf_page = document[page - 1]
        scale = dpi / 72
        image = pdf_page.render(scale=scale).to_pil().convert("RGB")
        wanted = [s for s in sentences if _letters(s)]
        note = ""
        if not wanted:
            boxes: list[tuple[int, int, int, int]] = []
            found = 0
        elif ocr:
            boxes, found, note = _ocr_boxes(pdf_page, wanted, scale, ocr_engine)
        else:
            boxes, found = _text_boxes(pdf_page, wanted, image.size)
        if wanted and not note and found < len(wanted):
            note = (f"the cited sentence was not found on page {page}" if found == 0 else
                    f"{len(wanted) - found} of {len(wanted)} cited sentences were not found on page {page}")
            note += " (the file may have changed since it was ingested)"
        return PageView(png=_png_with_boxes(image, boxes), width=image.width, height=image.height, page=page,
                        boxes=tuple(boxes), note=note, found=found, wanted=len(wanted))
    finally:
        document.close()


# -- matching ------------------------------------------------------------------------------------------------------
def _letters(text: str) -> str:
    """Only the letters and digits, case-folded and NFKC-normalised (ligatures split): what two readings share."""
    return "".join(ch for ch in unicodedata.normalize("NFKC", text).casefold() if ch.isalnum())


@dataclass
class _Flat:
    """A page's text as letters and digits, each mapped back to the unit (char or word) it came from."""

    text: list[str] = field(default_factory=list)
    owner: list[int] = field(default_factory=list)

    def add(self, piece: str, unit: int) -> None:
        for ch in _letters(piece):
            self.text.append(ch)
            self.owner.append(unit)

    def find(self, sentence: str) -> tuple[int, int] | None:
        """The first and last unit of the sentence on the page (exact, else a near match), or None."""
        needle, hay = _letters(sentence), "".join(self.text)
        if not needle:
            return None
        at = hay.find(needle)
        if at >= 0:
            return self.owner[at], self.owner[at + len(needle) - 1]
        matcher = difflib.SequenceMatcher(None, needle, hay, autojunk=False)
        blocks = [b for b in matcher.get_matching_blocks() if b.size >= MIN_BLOCK]
        if not blocks or sum(b.size for b in blocks) < NEAR_MATCH_SHARE * len(needle):
            return None
        first, last = blocks[0].b, blocks[-1].b + blocks[-1].size - 1
        if last - first + 1 > 1.5 * len(needle):  # scattered over the page: not the sentence
            return None
        return self.owner[first], self.owner[last]


def _text_boxes(pdf_page, sentences: Sequence[str], size: tuple[int, int]) -> tuple[list[tuple[int, int, int, int]], int]:
    """Pixel boxes over each sentence found in the page's text layer, and how many were found."""
    import pypdfium2.raw as pdfium_c

    textpage = pdf_page.get_textpage()
    try:
        chars = [chr(pdfium_c.FPDFText_GetUnicode(textpage.raw, index) or 32) for index in range(textpage.count_chars())]
        flat = _Flat()
        for index, char in enumerate(chars):
            flat.add(char, index)
        boxes, found = [], 0
        for sentence in sentences:
            hit = flat.find(sentence)
            if hit is None:
                continue
            found += 1
            first, last = _with_punctuation(chars, sentence, *hit)
            for i in range(textpage.count_rects(first, last - first + 1)):
                boxes.append(_to_device(pdf_page, textpage.get_rect(i), size))
        return boxes, found
    finally:
        textpage.close()


def _with_punctuation(chars: list[str], sentence: str, first: int, last: int) -> tuple[int, int]:
    """The matched characters widened to the punctuation the sentence starts or ends with (a quote, a full stop),
    where the page has it right there."""
    def edge(text: str) -> int:
        return len(text) - len(text.lstrip(_PUNCTUATION))

    lead, trail = edge(sentence.strip()), edge(sentence.strip()[::-1])
    while lead and first > 0 and chars[first - 1] in _PUNCTUATION:
        first, lead = first - 1, lead - 1
    while trail and last + 1 < len(chars) and chars[last + 1] in _PUNCTUATION:
        last, trail = last + 1, trail - 1
    return first, last


_PUNCTUATION = ".,;:!?'\"()[]‘’“”…-"


def _to_device(pdf_page, rect: tuple[float, float, float, float], size: tuple[int, int]) -> tuple[int, int, int, int]:
    """A rectangle in page points (left, bottom, right, top) → pixels (left, top, right, bottom) of the rendering,
    through pdfium's own page-to-device mapping (crop box and page rotation included)."""
    import ctypes

    import pypdfium2.raw as pdfium_c

    width, height = size
    xs, ys = [], []
    for px, py in ((rect[0], rect[1]), (rect[2], rect[3])):
        dx, dy = ctypes.c_int(), ctypes.c_int()
        pdfium_c.FPDF_PageToDevice(pdf_page.raw, 0, 0, width, height, 0, px, py, ctypes.byref(dx), ctypes.byref(dy))
        xs.append(dx.value)
        ys.append(dy.value)
    pad = 2
    return (max(min(xs) - pad, 0), max(min(ys) - pad, 0), min(max(xs) + pad, width), min(max(ys) + pad, height))


def _ocr_boxes(pdf_page, sentences: Sequence[str], scale: float,
               engine_name: str) -> tuple[list[tuple[int, int, int, int]], int, str]:
    """Pixel boxes over each sentence found among the OCR word boxes of the page, how many were found, and a note
    when there is no OCR engine."""
    from ingest.loaders.ocr import OCR_DPI, ocr_engine

    engine = ocr_engine(engine_name)
    if engine is None:
        return [], 0, ("this page was read by OCR and no OCR engine is available now (none installed, or "
                       "ingest.ocr_engine is off): shown without highlight")
    image = pdf_page.render(scale=OCR_DPI / 72, grayscale=True).to_pil()  # as at ingest: the same words
    words = engine.words(image)
    flat = _Flat()
    for index, (text, _box) in enumerate(words):
        flat.add(text, index)
    factor = scale / (OCR_DPI / 72)
    boxes, found = [], 0
    for sentence in sentences:
        hit = flat.find(sentence)
        if hit is None:
            continue
        found += 1
        boxes.extend(_line_boxes([box for _, box in words[hit[0]:hit[1] + 1]], factor))
    return boxes, found, ""


def _line_boxes(word_boxes: list[tuple[int, int, int, int]], factor: float) -> list[tuple[int, int, int, int]]:
    """Word boxes merged into one box per line (words whose vertical centres fall inside the line), scaled."""
    lines: list[list[int]] = []
    for left, top, right, bottom in word_boxes:
        centre = (top + bottom) / 2
        if lines and lines[-1][1] <= centre <= lines[-1][3]:
            line = lines[-1]
            line[0], line[1], line[2], line[3] = min(line[0], left), min(line[1], top), max(line[2], right), max(line[3], bottom)
        else:
            lines.append([left, top, right, bottom])
    pad = 2
    return [(int(x0 * factor) - pad, int(y0 * factor) - pad, int(x1 * factor) + pad, int(y1 * factor) + pad)
            for x0, y0, x1, y1 in lines]


def _png_with_boxes(image, boxes: Sequence[tuple[int, int, int, int]]) -> bytes:
    from PIL import Image, ImageDraw

    if boxes:
        overlay = Image.new("RGBA", image.size, (0, 0, 0, 0))
        draw = ImageDraw.Draw(overlay)
        for box in boxes:
            draw.rectangle(box, fill=HIGHLIGHT)
        image = Image.alpha_composite(image.convert("RGBA"), overlay).convert("RGB")
    raw = io.BytesIO()
    image.save(raw, format="PNG", optimize=True)
    return raw.getvalue()

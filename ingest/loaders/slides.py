"""PowerPoint (.pptx): one segment per slide (title, text frames and tables in shape order, then the speaker
notes), located by its `slide` number, read as a person reads the slide:

- a line break inside a paragraph (`<a:br/>`, which python-pptx gives as U+000B) is a space inside a sentence, a
  word hyphenated by hand at one is rejoined, breaks between short lines stay (`line_breaks`); a paragraph of a
  text box that carries on the sentence of the one before is joined to it;
- bulleted and numbered paragraphs (their own, their placeholder's, layout's or master's list style) become
  "- item" / "1. item" lines, indented by level (`list_items`);
- footers, dates and slide numbers (their placeholders, or the same text box in the top or bottom margin of
  several slides) are dropped;
- NFKC (`characters`).
"""

from __future__ import annotations

import io
import re

from ingest.loaders.archives import checked_bytes
from ingest.loaders.base import Loader, default_title, short_reason
from ingest.loaders.characters import normalise
from ingest.loaders.line_breaks import continues_sentence, join_soft_breaks
from ingest.loaders.list_items import counter_text, item_line
from ingest.loaders.segments import Joiner
from ingest.loaders.tables import markdown_table
from ingest.loaders.vocabulary import DocumentWords
from ingest.types import Document, LoadError

_A = "{http://schemas.openxmlformats.org/drawingml/2006/main}"
_P = "{http://schemas.openxmlformats.org/presentationml/2006/main}"
#: Top and bottom share of a slide where running footers live (as `pdf_text.MARGIN` for pages).
_MARGIN = 0.12
#: `a:buAutoNum` schemes → `list_items.counter_text` styles, and suffixes → how the counter is written.
_SCHEMES = {"arabic": "decimal", "alphaLc": "lower-letter", "alphaUc": "upper-letter", "romanLc": "lower-roman",
            "romanUc": "upper-roman"}
_SUFFIXES = {"Period": "{}.", "ParenR": "{})", "ParenBoth": "({})", "Plain": "{}", "Minus": "{} -"}


class PptxLoader(Loader):
    """The section is the slide's title ("Slide 3" when it has none); hidden slides are read too."""

    suffixes = frozenset({".pptx"})

    def load(self, data: bytes, rel: str, suffix: str) -> list[Document]:
        checked_bytes(data, "PPTX")  # encrypted, legacy, corrupt or a zip bomb: refused before parsing
        try:
            from pptx import Presentation

            deck = Presentation(io.BytesIO(data))
            slides = list(deck.slides)
        except Exception as exc:  # python-pptx raises KeyError/ValueError/... on broken packages
            raise LoadError(f"corrupt PPTX: {short_reason(exc)}") from exc

        words = DocumentWords(line for slide in slides for frame in _frames(slide) for paragraph in frame.paragraphs
                              for line in _lines(paragraph.text))
        footers = _running_footers(slides, deck.slide_height or 0)
        joiner = Joiner()
        for number, slide in enumerate(slides, 1):
            title_shape = slide.shapes.title
            slide_title = _one_line(title_shape.text_frame.text) if title_shape is not None else ""
            parts = [slide_title] if slide_title else []
            for shape in slide.shapes:
                if title_shape is not None and shape.shape_id == title_shape.shape_id:
                    continue
                if (number - 1, shape.shape_id) not in footers:
                    parts.extend(_shape_texts(shape, words))
            if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
                notes = _frame_text(slide.notes_slide.notes_text_frame, words, None)
                if notes:
                    parts.append(f"Notes: {notes}")
            joiner.add("\n\n".join(parts), section=slide_title or f"Slide {number}", extra={"slide": number})
        if not joiner.segments:
            raise LoadError("no text in PPTX" if slides else "no slides in PPTX")
        title = _one_line(deck.core_properties.title or "")
        return [Document(doc_id=rel, title=title or default_title(rel), kind="pptx", segments=joiner.segments,
                         extra={"slides": len(slides)})]


def _frames(slide):
    """Every text frame of a slide (inside groups too) and its notes."""
    shapes = list(slide.shapes)
    while shapes:
        shape = shapes.pop(0)
        if shape.shape_type is not None and getattr(shape, "shapes", None) is not None:
            shapes.extend(shape.shapes)
        elif getattr(shape, "has_text_frame", False) and shape.has_text_frame:
            yield shape.text_frame
    if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
        yield slide.notes_slide.notes_text_frame


def _shape_texts(shape, words: DocumentWords) -> list[str]:
    """The text of a shape: its paragraphs, a table as Markdown, or the shapes inside a group."""
    if shape.shape_type is not None and getattr(shape, "shapes", None) is not None:  # a group
        return [text for child in shape.shapes for text in _shape_texts(child, words)]
    if getattr(shape, "has_table", False) and shape.has_table:
        rows = [[normalise(cell.text) for cell in row.cells] for row in shape.table.rows]
        table = markdown_table(rows)
        return [table] if table else []
    if _placeholder_kind(shape) in ("date", "footer", "slide_number"):
        return []
    if getattr(shape, "has_text_frame", False) and shape.has_text_frame:
        text = _frame_text(shape.text_frame, words, shape)
        return [text] if text else []
    return []


def _frame_text(frame, words: DocumentWords, shape) -> str:
    """A text frame's paragraphs: list items on their own lines with their markers, other paragraphs joined to
    the one before when they carry on its sentence. `shape` None: no list styles (speaker notes)."""
    out: list[str] = []
    plain_before = False  # the last line is a paragraph that is no list item
    counters: dict[int, int] = {}
    for paragraph in frame.paragraphs:
        text = join_soft_breaks(_lines(paragraph.text), words)
        if not text:
            continue
        level = paragraph.level
        bullet = _bullet(shape, paragraph) if shape is not None else None
        if bullet is None:
            if plain_before and continues_sentence(out[-1].rsplit("\n", 1)[-1], text):
                out[-1] += " " + text
            else:
                out.append(text)
            plain_before = True
            continue
        for deeper in [key for key in counters if key > level]:
            del counters[deeper]  # a higher level restarts the deeper ones
        marker = "-"
        if bullet[0] != "-":
            style, pattern, start = bullet
            counters[level] = counters[level] + 1 if level in counters else start
            marker = pattern.format(counter_text(counters[level], style))
        out.append(item_line(text.replace("\n", " "), marker, level))
        plain_before = False
    return "\n".join(out)


def _lines(text: str) -> list[str]:
    return normalise(text.replace("\v", "\n")).split("\n")


def _bullet(shape, paragraph) -> tuple[str, str, int] | tuple[str] | None:
    """("-",) for a bullet, (counter style, pattern, start) for a numbered item, None for neither: the
    paragraph's own properties, else its level in the list styles of the shape, its layout and master
    placeholders, and the master's text styles."""
    level_tag = f"{_A}lvl{min(paragraph.level, 8) + 1}pPr"
    sources = [paragraph._p.pPr]
    owner = shape
    for _ in range(3):  # the shape, its layout placeholder, the master's
        if owner is None:
            break
        sources.append(owner.element.find(f"{_P}txBody/{_A}lstStyle/{level_tag}"))
        try:
            owner = owner._base_placeholder if owner.is_placeholder else None
        except (AttributeError, KeyError, ValueError):
            owner = None
    kind = _placeholder_kind(shape)
    style = "otherStyle" if kind is None else "titleStyle" if kind in ("title", "center_title") else "bodyStyle"
    try:
        master = shape.part.slide_layout.slide_master.element
        sources.append(master.find(f"{_P}txStyles/{_P}{style}/{level_tag}"))
    except AttributeError:
        pass
    for properties in sources:
        if properties is None:
            continue
        if properties.find(f"{_A}buNone") is not None:
            return None
        numbered = properties.find(f"{_A}buAutoNum")
        if numbered is not None:
            scheme = re.match(r"(arabic|alphaLc|alphaUc|romanLc|romanUc)(\w*)", numbered.get("type", ""))
            start = numbered.get("startAt", "1")
            style_name, suffix = (_SCHEMES[scheme.group(1)], scheme.group(2)) if scheme else ("decimal", "Period")
            return style_name, _SUFFIXES.get(suffix, "{}."), int(start) if start.isdigit() else 1
        if properties.find(f"{_A}buChar") is not None or properties.find(f"{_A}buBlip") is not None:
            return ("-",)
    return None


def _placeholder_kind(shape) -> str | None:
    """"title", "body", "footer", "slide_number", ... for a placeholder; None for any other shape."""
    if not getattr(shape, "is_placeholder", False):
        return None
    try:
        kind = shape.placeholder_format.type
    except (AttributeError, ValueError):
        return "body"
    return (getattr(kind, "name", "") or "body").lower()


def _running_footers(slides, slide_height: int) -> set[tuple[int, int]]:
    """(slide index, shape id) of text boxes whose text (digits aside) stands in the top or bottom margin of
    several slides: running footers typed into a text box."""
    seen: dict[str, list[tuple[int, int]]] = {}
    for index, slide in enumerate(slides):
        for shape in slide.shapes:
            if not (getattr(shape, "has_text_frame", False) and shape.has_text_frame) or shape.top is None:
                continue
            bottom = shape.top + (shape.height or 0)
            if not slide_height or _MARGIN * slide_height < shape.top and bottom < (1 - _MARGIN) * slide_height:
                continue
            key = re.sub(r"\d+", "#", _one_line(shape.text_frame.text).casefold())
            if key:
                seen.setdefault(key, []).append((index, shape.shape_id))
    repeated = 2 if len(slides) <= 3 else max(3, round(0.2 * len(slides)))
    return {place for places in seen.values() if len({i for i, _ in places}) >= repeated for place in places}


def _one_line(text: str) -> str:
    return " ".join(normalise(text.replace("\v", " ")).split())

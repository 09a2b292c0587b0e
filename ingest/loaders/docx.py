"""DOCX: paragraphs, lists and tables (as Markdown tables) in body order (python-docx), one segment per heading
section, read as a person reads the page:

- soft line breaks (`<w:br/>`, Shift+Enter) inside a sentence are spaces, a word hyphenated by hand at one is
  rejoined, breaks between short lines (an address) stay (`line_breaks`);
- list paragraphs (Word numbering, direct or through the style) get their marker ("- ", "1. ", "a) "), nested
  levels indented, and follow their lead-in paragraph on the next line;
- headings: "Heading N" styles, styles based on them, and outline levels;
- NFKC (`characters`); the header and footer parts (running text on every page) are not read;
- content controls (`w:sdt`: cover pages, tables of contents) are read through.
"""

from __future__ import annotations

import io
import re

from ingest.loaders.archives import checked_bytes
from ingest.loaders.base import Loader, default_title, short_reason
from ingest.loaders.characters import normalise
from ingest.loaders.line_breaks import join_soft_breaks
from ingest.loaders.list_items import counter_text, item_line
from ingest.loaders.segments import Joiner, heading_path, push_heading
from ingest.loaders.tables import markdown_table
from ingest.loaders.vocabulary import DocumentWords
from ingest.types import Document, LoadError

_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
#: Word's number formats → `list_items.counter_text` styles; "bullet" and "none" are handled apart.
_NUMBER_FORMATS = {"decimal": "decimal", "decimalZero": "decimal", "lowerLetter": "lower-letter",
                   "upperLetter": "upper-letter", "lowerRoman": "lower-roman", "upperRoman": "upper-roman"}


class DocxLoader(Loader):
    """The title from the core properties, a `Title` paragraph or the first `Heading 1`; tables as Markdown."""

    suffixes = frozenset({".docx"})

    def load(self, data: bytes, rel: str, suffix: str) -> list[Document]:
        checked_bytes(data, "DOCX")  # encrypted, legacy, corrupt or a zip bomb: refused before parsing
        try:
            import docx
            from docx.table import Table
            from docx.text.paragraph import Paragraph

            document = docx.Document(io.BytesIO(data))
            blocks = [Paragraph(e, document) if e.tag == f"{_W}p" else Table(e, document)
                      for e in _body_blocks(document.element.body)]
        except Exception as exc:  # python-docx raises KeyError/ValueError/... on broken packages
            raise LoadError(f"corrupt DOCX: {short_reason(exc)}") from exc

        texts = {id(block): normalise(block.text) for block in blocks if isinstance(block, Paragraph)}
        words = DocumentWords(line for text in texts.values() for line in text.split("\n"))
        numbering = _Numbering(document)
        title = (document.core_properties.title or "").strip()
        joiner = Joiner()
        stack: list[tuple[int, str]] = []
        section = ""
        parts: list[str] = []
        attach_item = False  # the last part is a paragraph or list item: a list item goes on its next line

        def flush() -> None:
            joiner.add("\n\n".join(parts), section=section)
            parts.clear()

        for block in blocks:
            if not isinstance(block, Paragraph):
                # A merged cell repeats in each grid column it covers, which keeps the columns aligned.
                table = markdown_table([[normalise(cell.text) for cell in row.cells] for row in block.rows])
                if table:
                    parts.append(table)
                attach_item = False
                continue
            text = texts[id(block)].strip()
            if not text:
                continue
            style = _style_name(block)
            level = _heading_level(block)
            if style == "Title":
                title = title or " ".join(text.split())
                continue
            if level:
                flush()
                heading = " ".join(text.split())
                push_heading(stack, level, heading)
                section = heading_path(stack)
                if level == 1 and not title:
                    title = heading
                attach_item = False
                continue
            text = join_soft_breaks(text.split("\n"), words)
            item = numbering.item(block)
            if item is None:
                parts.append(text)
                attach_item = True  # a paragraph may be the lead-in of a list that follows
                continue
            marker, depth = item
            line = item_line(text.replace("\n", " "), marker, depth)
            if attach_item and parts:
                parts[-1] += "\n" + line
            else:
                parts.append(line)
        flush()
        if not joiner.segments:
            raise LoadError("no text in DOCX")
        return [Document(doc_id=rel, title=title or default_title(rel), kind="docx", segments=joiner.segments)]


def _body_blocks(body):
    """The body's paragraphs and tables in order, those inside content controls (`w:sdt`) included."""
    for element in body.iterchildren():
        if element.tag in (f"{_W}p", f"{_W}tbl"):
            yield element
        elif element.tag == f"{_W}sdt":
            content = element.find(f"{_W}sdtContent")
            if content is not None:
                yield from _body_blocks(content)


def _style_name(paragraph) -> str:
    return (paragraph.style.name if paragraph.style is not None else "") or ""


def _styles(paragraph):
    """The paragraph's style and the styles it is based on, nearest first."""
    style, seen = paragraph.style, 0
    while style is not None and seen < 10:
        yield style
        style, seen = style.base_style, seen + 1


def _heading_level(paragraph) -> int:
    """1-9 for a heading: a "Heading N" style (or one based on it), or an outline level on the paragraph or style."""
    for element in [paragraph._p] + [style.element for style in _styles(paragraph)]:
        outline = element.find(f"{_W}pPr/{_W}outlineLvl")
        if outline is not None and (value := outline.get(f"{_W}val", "")).isdigit() and int(value) < 9:
            return int(value) + 1
    for style in _styles(paragraph):
        match = re.fullmatch(r"[Hh]eading (\d)", style.name or "")
        if match:
            return int(match.group(1))
    return 0


class _Numbering:
    """Word's list numbering: which paragraphs are list items, their marker ("-", "3.", "b)") and nesting depth."""

    def __init__(self, document):
        try:
            self.root = document.part.numbering_part.element
        except (KeyError, NotImplementedError):  # no numbering part: no lists
            self.root = None
        self.counters: dict[str, list[int]] = {}

    def item(self, paragraph) -> tuple[str, int] | None:
        """(marker, depth) when `paragraph` is a list item, else None."""
        if self.root is None:
            return None
        num_id, level = self._num_pr(paragraph)
        if not num_id or num_id == "0":
            return None
        definition = self._level(num_id, level)
        if definition is None:
            return None
        number_format, text, start = definition
        if number_format == "none":
            return None
        if level is None:  # "List Bullet 2" style: the depth is in the style's name
            match = re.search(r" (\d)$", _style_name(paragraph))
            level = int(match.group(1)) - 1 if match else 0
        depth = level
        if number_format == "bullet":
            return "-", depth
        counters = self.counters.setdefault(num_id, [])
        del counters[depth + 1:]  # a higher level restarts the deeper ones
        counters.extend([0] * (depth + 1 - len(counters)))
        counters[depth] = counters[depth] + 1 if counters[depth] else start
        marker = re.sub(r"%(\d)", lambda m: self._counter(counters, int(m.group(1)) - 1, number_format), text)
        return (marker.strip() or f"{counters[depth]}."), depth

    def _counter(self, counters: list[int], level: int, number_format: str) -> str:
        return counter_text(counters[level] if level < len(counters) else 1, _NUMBER_FORMATS.get(number_format, ""))

    def _num_pr(self, paragraph) -> tuple[str, int | None]:
        """The numbering id and level, from the paragraph or else its styles."""
        for element in [paragraph._p] + [style.element for style in _styles(paragraph)]:
            num_pr = element.find(f"{_W}pPr/{_W}numPr")
            if num_pr is not None:
                num_id = num_pr.find(f"{_W}numId")
                ilvl = num_pr.find(f"{_W}ilvl")
                level = int(ilvl.get(f"{_W}val", "0")) if ilvl is not None else None
                return (num_id.get(f"{_W}val", "") if num_id is not None else ""), level
        return "", None

    def _level(self, num_id: str, level: int | None) -> tuple[str, str, int] | None:
        """(number format, level text such as "%1.", start) of a list level."""
        num = self.root.find(f"{_W}num[@{_W}numId='{num_id}']")
        abstract_id = num.find(f"{_W}abstractNumId") if num is not None else None
        if abstract_id is None:
            return None
        abstract = self.root.find(f"{_W}abstractNum[@{_W}abstractNumId='{abstract_id.get(f'{_W}val')}']")
        lvl = abstract.find(f"{_W}lvl[@{_W}ilvl='{level or 0}']") if abstract is not None else None
        if lvl is None:
            return None

        def value(tag: str, default: str) -> str:
            element = lvl.find(f"{_W}{tag}")
            return element.get(f"{_W}val", default) if element is not None else default

        start = value("start", "1")
        return value("numFmt", "decimal"), value("lvlText", "%1."), int(start) if start.isdigit() else 1

"""A PDF's lines (`pdf_layout`) → the paragraphs a person reads, each with its page, section and kind.

- Page furniture goes: running headers and footers (the same line, digits aside, in the top or bottom margin of
  several pages), lone page numbers in the margins, and arXiv's vertical stamp.
- Lines join into paragraphs; a paragraph ends at a gap, an indent, a change of type size, a short last line, a
  heading or a caption.
- A word hyphenated at a line end is joined ("intro-duced" → "introduced") unless the document itself writes it
  with the hyphen, or both halves are words of the document ("task-specific", "state-of-the-art" keep theirs).
- NFKC (ligatures: "ﬁ" → "fi"); control and private-use characters (math glyphs mapped nowhere) are dropped.
- Headings (`pdf_headings`) become the section path; "Figure 3: ..." and "Table 2: ..." paragraphs are captions;
  everything under a "References" heading is marked as the reference list; ruled tables (`pdf_tables`) replace the
  lines they cover.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from ingest.loaders.characters import normalise
from ingest.loaders.pdf_headings import heading_level, heading_text, is_references
from ingest.loaders.pdf_layout import Line
from ingest.loaders.segments import heading_path, push_heading
from ingest.loaders.vocabulary import LINE_END_HYPHEN, DocumentWords

#: Top and bottom share of a page where running headers, footers and page numbers live.
MARGIN = 0.12
_PAGE_NUMBER = re.compile(r"^(?:page\s+)?(?:\d{1,4}|[ivxlc]{1,6})(?:\s*(?:/|of)\s*\d{1,4})?$", re.IGNORECASE)
_ARXIV_STAMP = re.compile(r"^arXiv:\s?\d{4}\.\d{4,5}(?:v\d+)?\s*\[[^\]]+\]\s*\d{1,2}\s*\w{3,9}\s*\d{4}$")
_CAPTION = re.compile(r"^(?:Figure|Fig\.|Table|Tab\.|Algorithm)\s*[A-Z]?\d+(?:\.\d+)?\s*[:.|]", re.IGNORECASE)
_SENTENCE_END = re.compile(r"[.!?:][\"')\]]*$")


@dataclass
class Paragraph:
    text: str
    page: int  # 0-based page index
    section: str = ""
    kind: str = "body"  # body | caption | table
    references: bool = False


@dataclass
class PageTable:
    """A ruled table on a page: its box in points (top-down) and its Markdown."""

    left: float
    top: float
    right: float
    bottom: float
    markdown: str

    def covers(self, line: Line) -> bool:
        middle = (line.top + line.bottom) / 2
        return self.top - 1 <= middle <= self.bottom + 1 and self.left - 1 <= line.left <= self.right + 1


def read_document(pages: list[list[Line]], tables: dict[int, list[PageTable]] | None = None,
                  ) -> tuple[str, list[Paragraph]]:
    """The title (large type on the first page, "" when none) and the paragraphs of a PDF's pages of lines."""
    pages = [[_normalised(line) for line in lines] for lines in pages]
    reader = _Reader(pages)
    for index, lines in enumerate(pages):
        reader.read_page(index, lines, (tables or {}).get(index, []))
    return reader.title, reader.out


class _Reader:
    """Walks the lines page by page, keeping the heading path and whether the reference list is open."""

    def __init__(self, pages: list[list[Line]]):
        self.dropped = _page_furniture(pages)
        self.body_size = _body_size(pages)
        self.vocabulary = DocumentWords(line.text for lines in pages for line in lines)
        self.title = _title(pages[0] if pages else [], self.body_size)
        self.out: list[Paragraph] = []
        self.stack: list[tuple[int, str]] = []
        self.references_level = 0  # the level of the "References" heading while inside it, else 0
        self.current: list[Line] = []
        self.kind = "body"

    def read_page(self, index: int, lines: list[Line], tables: list[PageTable]) -> None:
        pending = list(tables)
        previous: Line | None = None
        for number, line in enumerate(lines):
            if (index, number) in self.dropped or self._is_title(index, line):
                continue
            table = next((t for t in tables if t.covers(line)), None)
            if table is not None:  # the table, once, where its first line was
                if table in pending:
                    self.flush(index)
                    pending.remove(table)
                    self.add(index, self.vocabulary.clean_table(table.markdown), "table")
                continue
            text = " ".join(line.text.replace(LINE_END_HYPHEN, "-").split())
            level = heading_level(line, text, self.body_size)
            if level is not None:
                self.flush(index)
                self.heading(level, heading_text(self.vocabulary.clean(line.text)), previous, line)
            else:
                if self.current and _breaks(self.current[-1], line):
                    self.flush(index)
                if not self.current and _CAPTION.match(text):
                    self.kind = "caption"
                self.current.append(line)
            previous = line
        self.flush(index)
        for table in pending:
            self.add(index, self.vocabulary.clean_table(table.markdown), "table")

    def heading(self, level: int, heading: str, previous: Line | None, line: Line) -> None:
        if previous is not None and previous.bold and _continues_heading(previous, line, self.stack):
            level, heading = self.stack[-1][0], f"{self.stack[-1][1]} {heading}"
        if is_references(heading):
            self.references_level = level
        elif self.references_level and level <= self.references_level:
            self.references_level = 0
        push_heading(self.stack, level, heading)

    def flush(self, index: int) -> None:
        text = self.vocabulary.clean(" ".join(_joined(self.current)))
        self.add(index, text, self.kind)
        self.current, self.kind = [], "body"

    def add(self, index: int, text: str, kind: str) -> None:
        if text:
            self.out.append(Paragraph(text, index, heading_path(self.stack), kind, self.references_level > 0))

    def _is_title(self, index: int, line: Line) -> bool:
        return index == 0 and bool(self.title) and line.size >= 1.3 * self.body_size and \
            " ".join(line.text.split()) in self.title


def _normalised(line: Line) -> Line:
    line.text = normalise(line.text)  # keeps LINE_END_HYPHEN
    return line


def _page_furniture(pages: list[list[Line]]) -> set[tuple[int, int]]:
    """(page, line) of running headers/footers, margin page numbers and arXiv stamps."""
    keys: dict[str, set[int]] = {}
    in_margin: list[tuple[int, int, str]] = []
    dropped: set[tuple[int, int]] = set()
    for page, lines in enumerate(pages):
        for number, line in enumerate(lines):
            text = " ".join(line.text.split())
            if _ARXIV_STAMP.match(text):
                dropped.add((page, number))
                continue
            if line.size <= 0 or MARGIN * line.page_height < line.top and line.bottom < (1 - MARGIN) * line.page_height:
                continue
            if _PAGE_NUMBER.match(text):
                dropped.add((page, number))
                continue
            key = re.sub(r"\d+", "#", text.casefold())
            keys.setdefault(key, set()).add(page)
            in_margin.append((page, number, key))
    repeated = 2 if len(pages) <= 3 else max(3, round(0.2 * len(pages)))
    dropped.update((page, number) for page, number, key in in_margin if len(keys[key]) >= repeated)
    return dropped


def _body_size(pages: list[list[Line]]) -> float:
    sizes: Counter[float] = Counter()
    for lines in pages:
        for line in lines:
            if line.size > 0:
                sizes[line.size] += len(line.text)
    return sizes.most_common(1)[0][0] if sizes else 0.0


def _title(first_page: list[Line], body_size: float) -> str:
    """The first page's largest type in its upper half, when clearly larger than the body text."""
    candidates = [line for line in first_page if line.size > 0 and line.top < line.page_height / 2]
    if not candidates or body_size <= 0:
        return ""
    largest = max(line.size for line in candidates)
    if largest < 1.3 * body_size:
        return ""
    parts = [" ".join(line.text.replace(LINE_END_HYPHEN, "-").split()) for line in candidates
             if line.size >= largest - 0.5]
    return " ".join(parts)[:200]


def _continues_heading(previous: Line, line: Line, stack: list[tuple[int, str]]) -> bool:
    """A heading's second line: right below a heading line, in the same size, and not numbered itself."""
    return bool(stack) and abs(previous.size - line.size) < 0.5 and 0 <= line.top - previous.bottom < line.size \
        and not re.match(r"^(?:\d|[A-Z]\.\d)", line.text.strip()) and stack[-1][1].endswith(previous.text.strip()[-8:])


def _breaks(previous: Line, line: Line) -> bool:
    """Whether `line` starts a new paragraph after `previous`."""
    if previous.size <= 0 or line.size <= 0:  # no places known: one paragraph per page
        return False
    if re.search(r"[A-Za-z]-$", previous.text.rstrip()) and line.text.lstrip()[:1].islower():
        return False  # a word hyphenated at the line end goes on
    size = max(previous.size, line.size)
    if abs(previous.size - line.size) > 0.15 * size:
        return True
    text = line.text.strip()
    if _CAPTION.match(text):
        return True
    ended = bool(_SENTENCE_END.search(previous.text.strip()))
    gap = line.top - previous.bottom
    if gap < -size:  # moved up: the next column or a float; a sentence may carry on there
        return ended
    if gap > 0.9 * size:
        return True
    same_column = abs(line.left - previous.left) < 3 * size
    if ended and same_column and line.left > previous.left + 0.6 * size:  # an indented first line
        return True
    return ended and previous.right < line.right - 4 * size  # a short last line


def _joined(lines: list[Line]) -> list[str]:
    """Line texts, a line that ends with a hyphen before a lower-case word marked as hyphenated."""
    out: list[str] = []
    for line in lines:
        text = line.text.strip()
        if out and out[-1].endswith("-") and len(out[-1]) > 1 and out[-1][-2].isalpha() and text[:1].islower():
            out[-1] = out[-1][:-1] + LINE_END_HYPHEN + text
            continue
        out.append(text)
    return out

"""Building `Segment`s: slices of a loaded text with their line numbers, pieces joined into an extracted text,
and the heading path ("Intro > Usage") that names a segment's section."""

from __future__ import annotations

import bisect

from ingest.types import Segment


class LineIndex:
    """Maps character offsets of a text to 1-based line numbers."""

    def __init__(self, text: str):
        self.starts = [0]
        find = text.find
        pos = find("\n")
        while pos != -1:
            self.starts.append(pos + 1)
            pos = find("\n", pos + 1)

    def line_of(self, offset: int) -> int:
        return bisect.bisect_right(self.starts, offset)


def slice_segment(text: str, lines: LineIndex | None, start: int, end: int, **meta) -> Segment | None:
    """A Segment for text[start:end] with surrounding whitespace trimmed, or None if it is blank."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if start >= end:
        return None
    seg = Segment(text=text[start:end], start_char=start, end_char=end, **meta)
    if lines is not None:
        seg.start_line = lines.line_of(start)
        seg.end_line = lines.line_of(end - 1)
    return seg


class Joiner:
    """Builds an extracted document text from pieces, recording each piece's offsets (pieces split by blank lines)."""

    def __init__(self):
        self.length = 0
        self.segments: list[Segment] = []

    def add(self, text: str, **meta) -> None:
        text = text.strip()
        if not text:
            return
        if self.segments:
            self.length += 2  # the "\n\n" separating pieces
        self.segments.append(Segment(text=text, start_char=self.length, end_char=self.length + len(text), **meta))
        self.length += len(text)


def heading_path(stack: list[tuple[int, str]]) -> str:
    return " > ".join(title for _, title in stack)


def push_heading(stack: list[tuple[int, str]], level: int, title: str) -> None:
    while stack and stack[-1][0] >= level:
        stack.pop()
    stack.append((level, title))


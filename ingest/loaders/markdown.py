"""Markdown: one segment per section, named by its heading path; the title from front matter or the first `#`."""

from __future__ import annotations

import re

from ingest.loaders.base import TextLoader, default_title
from ingest.loaders.segments import LineIndex, heading_path, push_heading, slice_segment
from ingest.types import Document, Segment

# Shared with the notebook loader (markdown cells).
ATX_HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_SETEXT_UNDERLINE = re.compile(r"^ {0,3}(={2,}|-{2,})[ \t]*$")
_NOT_SETEXT_TEXT = re.compile(r"^( {4}|\t|\s*([-*+>|]|\d+[.)])(\s|$)|\s*<)")  # code, list, quote, table, html
_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?\n)(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.S)


def clean_inline(text: str) -> str:
    """Heading text without markdown emphasis/code marks and with collapsed spaces."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)  # links and images → their text
    text = re.sub(r"[`*_]{1,3}([^`*_]+)[`*_]{1,3}", r"\1", text)
    return " ".join(text.split())


class MarkdownLoader(TextLoader):
    """Sections split at ATX (`#`) and setext (underlined) headings, outside code fences; offsets index the source."""

    suffixes = frozenset({".md", ".markdown", ".mdown", ".mkd"})

    def load_text(self, text: str, rel: str, suffix: str) -> Document:
        lines = LineIndex(text)
        title = ""
        body_start = 0
        front = _FRONT_MATTER.match(text)
        if front:
            body_start = front.end()
            match = re.search(r"^title:[ \t]*(.+?)[ \t]*$", front.group(1), re.M)
            if match:
                title = match.group(1).strip("'\"")

        segments: list[Segment] = []
        stack: list[tuple[int, str]] = []
        section = ""
        seg_start = body_start
        fence: str | None = None
        offset = body_start
        # The previous line, when it could be the text of a setext heading (a lone paragraph line).
        candidate: tuple[int, str] | None = None  # (offset, line)
        previous_blank = True
        for line in text[body_start:].split("\n"):
            line_end = offset + len(line) + 1
            fence_match = FENCE.match(line)
            heading_at, level, heading_text = -1, 0, ""
            if fence is not None:
                if fence_match and fence_match.group(1)[0] == fence[0] and len(fence_match.group(1)) >= len(fence):
                    fence = None
            elif fence_match:
                fence = fence_match.group(1)
            elif (atx := ATX_HEADING.match(line)) is not None:
                heading_at, level, heading_text = offset, len(atx.group(1)), clean_inline(atx.group(2) or "")
            elif candidate is not None and (underline := _SETEXT_UNDERLINE.match(line)) is not None:
                heading_at, level, heading_text = candidate[0], 1 if underline.group(1)[0] == "=" else 2, candidate[1]
            if heading_at >= 0:
                seg = slice_segment(text, lines, seg_start, heading_at, section=section)
                if seg:
                    segments.append(seg)
                if heading_text:
                    if level == 1 and not title:
                        title = heading_text
                    push_heading(stack, level, heading_text)
                    section = heading_path(stack)
                seg_start = min(line_end, len(text))
            blank = not line.strip()
            candidate = None
            if fence is None and not fence_match and heading_at < 0 and not blank and previous_blank:
                if not _NOT_SETEXT_TEXT.match(line):
                    candidate = (offset, clean_inline(line))
            previous_blank = blank or heading_at >= 0
            offset = line_end
        seg = slice_segment(text, lines, seg_start, len(text), section=section)
        if seg:
            segments.append(seg)
        return Document(doc_id=rel, title=title or default_title(rel), kind="markdown", segments=segments)

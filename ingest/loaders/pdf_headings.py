"""Headings of a PDF, found from the layout: a short line set bold or larger than the body text that is numbered
("3.2 Training details", "A.1 Datasets") or a section every paper has ("Abstract", "References"). Its level comes
from the numbering (3 → 1, 3.2 → 2), else 1; the heading path is kept as Markdown's is (`segments.push_heading`).
"""

from __future__ import annotations

import re

from ingest.loaders.pdf_layout import Line

_NUMBERED = re.compile(r"^(?P<number>(?:\d{1,2}|[A-Z])(?:\.\d{1,2}){0,3})\.?\s+(?P<title>[A-Za-z].{0,90})$")
#: Small capitals set at the body size (ICLR): "1INTRODUCTION", "2.1 ADAM'S UPDATE RULE", "ABSTRACT".
_CAPS_HEADING = re.compile(r"^(?P<number>\d{1,2}(?:\.\d{1,2}){0,3}|[A-Z](?:\.\d{1,2}){0,3}(?=\s+[A-Z]{2}))?\.?\s*(?P<title>[A-Z][A-Z0-9 ,:;'’&()/?!.-]{3,90})$")
_NAMED = frozenset({
    "abstract", "introduction", "references", "bibliography", "acknowledgements", "acknowledgments",
    "acknowledgement", "acknowledgment", "conclusion", "conclusions", "related work", "appendix", "discussion",
    "background", "method", "methods", "results", "experiments", "supplementary material",
})
_REFERENCES = frozenset({"references", "bibliography", "literature cited", "works cited"})
#: A heading is set at least this much larger than the body text, or bold.
LARGER = 1.12
MAX_WORDS = 14


def heading_level(line: Line, text: str, body_size: float) -> int | None:
    """The level of `line` (its cleaned `text`) as a heading, or None when it is body text."""
    words = text.split()
    if not words or len(words) > MAX_WORDS or len(text) > 110 or text[-1] in ".,;:" and not _NUMBERED.match(text):
        return None
    caps = _CAPS_HEADING.match(text)
    if caps and line.size > 0 and sum(ch.isalpha() for ch in text) >= 4:
        if caps.group("number"):
            return caps.group("number").count(".") + 1
        if _bare_title(text) in _NAMED:
            return 1
    larger = body_size > 0 and line.size >= LARGER * body_size
    if not (line.bold or larger):
        return None
    numbered = _NUMBERED.match(text)
    if numbered and re.search(r"[A-Za-z]{2,}", numbered.group("title")) and not re.search(r"[=<>±×]|\d\s*%", text):
        number = numbered.group("number")
        if number.isalpha() and not line.bold and not larger:
            return None
        return number.count(".") + 1
    if _wordy(text) and (_bare_title(text) in _NAMED or _bare_title(text).startswith("appendix")):
        return 1
    if (line.bold and larger or line.size >= 1.25 * body_size) and _wordy(text) and text[0].isupper() and len(words) <= 8 and text[-1] not in ".,;:":
        return 1  # a bold larger, or much larger, line of words: a heading in most documents
    return None  # other bold or large lines are table heads, figure labels and formulas more often than headings


def heading_text(text: str) -> str:
    """A heading as shown: "1INTRODUCTION" (small capitals run together) → "1 INTRODUCTION"."""
    return re.sub(r"^(\d{1,2}(?:\.\d{1,2}){0,3})(?=[A-Z]{2})", r"\1 ", text)


def _wordy(text: str) -> bool:
    """Mostly letters, with a word of 3+ letters: not a formula set in large type ("Pt", "X", "√")."""
    visible = [ch for ch in text if not ch.isspace()]
    return bool(re.search(r"[A-Za-z]{3,}", text)) and sum(ch.isalpha() for ch in visible) >= 0.6 * len(visible)


def is_references(heading: str) -> bool:
    """Whether a heading opens the reference list."""
    return _bare_title(heading) in _REFERENCES


def _bare_title(text: str) -> str:
    """The heading without its number and punctuation, lower case: "7 References" → "references"."""
    match = _NUMBERED.match(heading_text(text))
    title = match.group("title") if match else text
    return re.sub(r"[^a-z ]+", "", title.lower()).strip()

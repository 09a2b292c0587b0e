"""List items as the lines a person sees and Markdown writes: "- item" for a bullet, "1. item" or "b) item" for a
numbered item, two spaces of indent per nesting level. The DOCX, PPTX and HTML loaders write their lists this way,
so an item keeps its marker and the chunker and `split_sentences` see one item per line."""

from __future__ import annotations

import re

#: The start of a line that is a list item: a bullet, or a number or letter with "." or ")".
LIST_MARKER = re.compile(r"^\s*(?:[-*+•◦▪‣–]|\(?\d{1,3}[.)]|\(?[a-z][.)]|\(?[ivx]{1,4}[.)])\s+")
_ROMAN = ((1000, "m"), (900, "cm"), (500, "d"), (400, "cd"), (100, "c"), (90, "xc"), (50, "l"), (40, "xl"),
          (10, "x"), (9, "ix"), (5, "v"), (4, "iv"), (1, "i"))


def item_line(text: str, marker: str = "-", level: int = 0) -> str:
    """One item on its line: "  - text" for `level` 1."""
    return f"{'  ' * max(0, level)}{marker} {text}"


def counter_text(number: int, style: str) -> str:
    """`number` as a list counter of `style`: "decimal", "lower-letter", "upper-letter", "lower-roman" or
    "upper-roman" (anything else reads as decimal)."""
    if style.endswith("letter") and number > 0:
        letters = ""
        while number > 0:
            number, rest = divmod(number - 1, 26)
            letters = chr(ord("a") + rest) + letters
        return letters.upper() if style.startswith("upper") else letters
    if style.endswith("roman") and 0 < number < 4000:
        roman = ""
        for value, digits in _ROMAN:
            count, number = divmod(number, value)
            roman += digits * count
        return roman.upper() if style.startswith("upper") else roman
    return str(number)

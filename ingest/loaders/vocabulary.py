"""A document's own words, to decide how a word broken at a line end with a hyphen is read: "intro-" + "duced" is
"introduced" unless the document writes "intro-duced"; "task-" + "specific" keeps its hyphen when both halves are
words of the document, "state-of-the-" + "art" when the first half already holds one. Shared by the PDF reader
(`pdf_text`) and the soft line breaks of DOCX, PPTX and HTML (`line_breaks`)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

from ingest.loaders.characters import normalise

#: Stands for a hyphen found at a line end, with the line break already removed ("repre\x1dsentation").
LINE_END_HYPHEN = "\x1d"
_WORD = re.compile(r"[A-Za-z]+(?:-[A-Za-z]+)*")
_HYPHENATED = re.compile(rf"([A-Za-z]+(?:-[A-Za-z]+)*)?{LINE_END_HYPHEN}\s*([A-Za-z]+)?")
_SPACED_HYPHEN = re.compile(r"\b([A-Za-z]+)- ([a-z]+)\b")


class DocumentWords:
    """How often each word occurs in the document's lines, not counting the halves of words broken at line ends."""

    def __init__(self, lines: Iterable[str]):
        self.words: Counter[str] = Counter()
        for line in lines:
            text = re.sub(rf"\S*{LINE_END_HYPHEN}\S*|\S+-$", " ", line)  # not the halves of a broken word
            self.words.update(word.lower() for word in _WORD.findall(text))

    def clean(self, text: str) -> str:
        """`text` on one line, each `LINE_END_HYPHEN` and "de- sign" decided by the document's words."""
        text = _HYPHENATED.sub(self._rejoin, text)
        text = _SPACED_HYPHEN.sub(self._rejoin_spaced, text)
        return " ".join(text.replace(LINE_END_HYPHEN, "-").split())

    def clean_table(self, markdown: str) -> str:
        """A table's Markdown with the same NFKC, dropped glyphs and rejoined words as the text, its rows kept."""
        return _SPACED_HYPHEN.sub(self._rejoin_spaced, normalise(markdown))

    def joined(self, before: str, after: str) -> str:
        """A line ending in `before` + "-" and the next starting with `after`, read as the document writes it."""
        return f"{before}-{after}" if self.keeps_hyphen(before, after) else before + after

    def _rejoin_spaced(self, match: re.Match) -> str:
        """"de- sign" (a line end pdfium ran on with a space) → "design" when the document writes "design";
        "storage- and compute-efficient" stays."""
        before, after = match.group(1), match.group(2)
        return before + after if self.words[(before + after).lower()] else match.group(0)

    def _rejoin(self, match: re.Match) -> str:
        before, after = match.group(1) or "", match.group(2) or ""
        if not before or not after:
            return f"{before}-{after}" if before and not after else before + after
        return self.joined(before, after)

    def keeps_hyphen(self, before: str, after: str) -> bool:
        hyphenated = self.words[f"{before}-{after}".lower()]
        joined = self.words[(before + after).lower()]
        if hyphenated or joined:
            return hyphenated >= joined
        if "-" in before or "-" in after or after[0].isupper():
            return True  # "state-of-the-" + "art", "state-" + "of-the-art", "GPT-" + "Large"
        last = before.rsplit("-", 1)[-1].lower()
        return len(last) >= 3 and len(after) >= 3 and self.words[last] > 0 and self.words[after.lower()] > 0

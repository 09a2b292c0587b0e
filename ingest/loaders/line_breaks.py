"""Which line breaks a person reads as a space. DOCX (`<w:br/>`), PowerPoint (`<a:br/>`) and HTML (`<br>`) let a
writer break a line by hand, and text pasted from e-mail or a PDF arrives hard-wrapped that way: the break is where
the line ended on someone's screen, not a boundary of meaning. Stored as it is, it cuts sentences in two for
`split_sentences` (evidence ranking, claim checking) and leaves "schedu-" + "led" as two broken words.

Rules, for the lines of one paragraph (as the PDF reader joins the lines of a paragraph):
- a line that starts with a list marker ("- ", "2. ") stays on its own line;
- a word hyphenated at the line end is rejoined as the document writes it (`vocabulary.DocumentWords`);
- a line that starts in lower case, or follows a line ending in a lower-case function word ("of", "the"), goes on
  the same sentence;
- in a paragraph that reads as prose (it ends a sentence and its lines hold several words each, or half its
  breaks already go on a sentence), every other break is a space too, except after a colon;
- anything else (an address, a poem, "Phone: ..." lines) keeps its breaks.
"""

from __future__ import annotations

import itertools
import re

from ingest.loaders.list_items import LIST_MARKER
from ingest.loaders.vocabulary import DocumentWords
from rag_app.text import STOPWORDS

_HYPHEN_END = re.compile(r"([^\W\d_]+(?:-[^\W\d_]+)*)-$")
_FIRST_WORD = re.compile(r"[^\W\d_]+(?:-[^\W\d_]+)*")  # with its own hyphens: "of-the-art"
_LAST_WORD = re.compile(r"([^\W\d_]+)$")
_SENTENCE_END = re.compile(r"[.!?][\"'”’)\]]*$")
_PROSE_WORDS_PER_LINE = 5


def join_soft_breaks(lines: list[str], words: DocumentWords) -> str:
    """The lines of one paragraph, with the breaks a person reads as spaces joined; the others stay "\\n"."""
    lines = [" ".join(line.split()) for line in lines]
    lines = [line for line in lines if line]
    if len(lines) < 2:
        return lines[0] if lines else ""
    prose = _reads_as_prose(lines)
    out = [lines[0]]
    for line in lines[1:]:
        previous = out[-1]
        if LIST_MARKER.match(line):
            out.append(line)
        elif (hyphen := _HYPHEN_END.search(previous)) and line[:1].islower():
            after = _FIRST_WORD.match(line)
            before = hyphen.group(1)
            rest = line[after.end():] if after else line
            out[-1] = previous[: hyphen.start()] + (words.joined(before, after.group()) if after else before) + rest
        elif continues_sentence(previous, line) or (prose and not previous.endswith(":")):
            out[-1] = f"{previous} {line}"
        else:
            out.append(line)
    return "\n".join(out)


def continues_sentence(previous: str, line: str) -> bool:
    """Whether `line` surely carries on the sentence `previous` ends in (a break in mid-sentence)."""
    if not previous or not line or LIST_MARKER.match(line):
        return False
    if line[0].islower():
        return True
    last = _LAST_WORD.search(previous)
    return last is not None and last.group().islower() and last.group() in STOPWORDS


def _reads_as_prose(lines: list[str]) -> bool:
    breaks = list(itertools.pairwise(lines))
    going_on = sum(continues_sentence(a, b) or bool(_HYPHEN_END.search(a)) for a, b in breaks)
    words_per_line = sum(len(line.split()) for line in lines) / len(lines)
    return 2 * going_on >= len(breaks) or (
        words_per_line >= _PROSE_WORDS_PER_LINE and bool(_SENTENCE_END.search(lines[-1])))

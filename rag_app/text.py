"""Plain-text handling shared by ingest, the services and the UI: stopwords, words, sentences, citations.

The bottom layer: standard library only, so `ingest/`, `rag_app.services` and `rag_app.ui` can all import it.

- `STOPWORDS`, `WORD`, `stem`, `fold`, `content_words`: the words that carry meaning, as grounding scores them
  (any script; accents folded);
- `word_tokens`: words and punctuation marks, for matching a reply against evidence;
- `word_pieces`, `estimate_tokens`: plain word runs and punctuation marks, and the model-free token estimate built on them
  (the fake embedder's tokens; the count of backends without a tokenizer);
- `squeeze_words`: lower-case words joined by single spaces, for comparing two texts whatever their punctuation;
- `split_sentences`: sentences (and markdown lines) of a text, for evidence ranking and claim checking;
- `SENTENCE_GAP`: the whitespace after a sentence end, where the chunker may cut a long text;
- `find_span`: where a sentence (possibly re-spaced) lies in the text it came from;
- `CITATION`, `cited_numbers`, `strip_citations`: `[1]` and `[1, 2]` markers in an answer.
"""

from __future__ import annotations

import math
import re
import unicodedata

STOPWORDS = frozenset("""
a an the and or but if then else of to in on at by for with from into onto upon about as is are was were be been being
am do does did doing done have has had having this that these those there here it its it's they them their theirs he him
his she her hers we us our you your i me my mine what which who whom whose when where why how whatever whichever whoever
not no nor so than too very can could should would may might must shall will just also only own same such both each few
more most other some any all many much one ones s t don now off out over under again further once up down during before
after above below between through while because until against among within without via per name named called kind type
""".split())

# Combining marks, which `\w` does not match but which belong to the word they follow: the Latin/Greek/Cyrillic
# diacritics of decomposed text, and the vowel signs and viramas of the Indic, Thai and Lao scripts.
_MARKS = "\u0300-\u036f\u0483-\u0489\u0591-\u05c7\u0610-\u061a\u064b-\u065f\u0900-\u0dff\u0e31-\u0e4e\u0eb1-\u0ecd"

#: A word: letters (of any script, with their combining marks) and digits, with an optional apostrophe suffix
#: ("don't", "Curie's", "Möngke", "हिन्दी").
WORD = re.compile(rf"[^\W_](?:[^\W_]|[{_MARKS}])*(?:['’][^\W\d_]+)?")
# Scripts written without spaces: a run of them is read as its overlapping character pairs.
_UNSPACED = re.compile(r"([\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]+)")

#: A word (with inner hyphens, apostrophes or dots: "24-10", "U.S") or a single punctuation mark: the unit in which
#: a free reply is matched against evidence, and the scripted LM's "tokens".
_WORD_OR_MARK = re.compile(r"\w+(?:[-'’.]\w+)*|[^\w\s]")
#: A plain run of word characters or a single punctuation mark (no inner hyphens or dots).
_PIECE = re.compile(r"\w+|[^\w\s]")

#: The whitespace after a sentence end (. ! ? … and the CJK full stops, optionally followed by closing quotes or
#: brackets): where the chunker may cut a text too long for one chunk. It does not look at the next sentence's first
#: letter, so it also cuts lower-case and non-Latin text; `split_sentences` is stricter.
SENTENCE_GAP = re.compile(r"(?<=[.!?…。！？])[\"'”’)\]]*\s+")

# Split after . ! ? (optionally followed by a closing quote or bracket) and whitespace, when the next sentence starts
# with a letter or digit that is not lower case (checked in `split_sentences`: "Ögedei" opens one, "e.g. the" does
# not), possibly after a quote; after the CJK full stops; and at line breaks (markdown lists, headings).
# Abbreviations are protected below.
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"'”’)\]]*\s+(?=[\"'“‘(\[]?[^\W_])|(?<=[。！？])[”’」』）)]*\s*(?![\[”’」』）)])|\n+")
_OPENING_MARKS = "\"'“‘(["
_ABBREVIATIONS = re.compile(r"\b(?:Mr|Mrs|Ms|Dr|Prof|Sr|Jr|St|Mt|vs|etc|e\.g|i\.e|U\.S|U\.K|No|Fig|Eq|al|Inc|Ltd|Co|"
                            r"Jan|Feb|"
                            r"Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec|[^\W\d_a-z])\.$")
_BARE_NUMBER = re.compile(r"\(?\d{1,2}[.)]")
_LIST_MARK = re.compile(r"^\s*(?:#{1,6}\s+|[-*+]\s+|\d+[.)]\s+|>\s*)")

#: A citation marker: `[1]` or `[1, 2]`, with the whitespace before it (so that stripping leaves clean text).
CITATION = re.compile(r"\s*\[(\d+(?:\s*,\s*\d+)*)\]")


def split_sentences(text: str) -> list[str]:
    """Split text into sentences (and markdown lines), keeping abbreviations like "Dr." or "U.S." inside."""
    sentences: list[str] = []
    pending = ""
    position = 0
    for match in _SENTENCE_END.finditer(text):
        if "\n" not in match.group(0) and text[match.end():match.end() + 2].lstrip(_OPENING_MARKS)[:1].islower():
            continue  # "... etc. and more": the next word is no sentence start
        piece = text[position:match.start()]
        position = match.end()
        candidate = (pending + " " + piece).strip() if pending else piece.strip()
        if "\n" not in match.group(0) and _ABBREVIATIONS.search(candidate):
            pending = candidate
            continue
        pending = ""
        if candidate:
            sentences.append(candidate)
    tail = (pending + " " + text[position:]).strip() if pending else text[position:].strip()
    if tail:
        sentences.append(tail)
    cleaned = []
    for sentence in sentences:
        sentence = _LIST_MARK.sub("", sentence).strip()
        if sentence and WORD.search(sentence) and not _BARE_NUMBER.fullmatch(sentence):  # "1." of a numbered list
            cleaned.append(sentence)
    return cleaned


_ORDINALS = dict(zip("1st 2nd 3rd 4th 5th 6th 7th 8th 9th 10th".split(),
                     "first second third fourth fifth sixth seventh eighth ninth tenth".split()))


def stem(word: str) -> str:
    """A tiny suffix stripper: enough to match "trained" with "training" and "engines" with "engine" (and "3rd" with
    "third")."""
    word = fold(word.lower().replace("’", "'"))
    word = _ORDINALS.get(word, word)
    if word.endswith("'s"):
        word = word[:-2]
    for suffix in ("ations", "ation", "ingly", "ings", "ing", "edly", "ies", "ied", "ers", "er", "ed", "es", "ly", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def fold(word: str) -> str:
    """The word without the diacritics of the Latin, Greek and Cyrillic scripts ("Möngke" -> "Mongke"), so that
    spellings with and without them match; other scripts' marks (Japanese voicing, Indic vowel signs) stay."""
    if word.isascii():
        return word
    bare = "".join(c for c in unicodedata.normalize("NFD", word) if not "\u0300" <= c <= "\u036f")
    return unicodedata.normalize("NFC", bare)


#: Terms whose words mean something else together, read as one word: a "learning rate" is a training setting and
#: scikit-learn a library, neither is learning ("What does a VAE learn?" must not meet the demo's training sentences).
_COMPOUND_TERMS = re.compile(r"\b(learning)[\s-]+(rate)s?\b|\b(scikit)-(learn)\b", re.IGNORECASE)


def content_words(text: str) -> list[str]:
    """Lower-cased stems of the words that carry meaning (stopwords dropped); a run of a script written without
    spaces (Chinese, Japanese, Korean) gives its overlapping character pairs."""
    if not text.isascii():
        text = unicodedata.normalize("NFC", text)
    text = _COMPOUND_TERMS.sub(lambda m: "".join(part for part in m.groups() if part), text)
    words = []
    for w in WORD.findall(text):
        if w.lower() in STOPWORDS:
            continue
        if w.isascii() or not _UNSPACED.search(w):
            words.append(stem(w))
            continue
        for k, part in enumerate(_UNSPACED.split(w)):  # odd parts are the unspaced runs
            if k % 2:
                words += [part[i:i + 2] for i in range(len(part) - 1)] or [part]
            elif part:
                words.append(stem(part))
    return words


def word_tokens(text: str) -> list[str]:
    """The words and punctuation marks of `text`, in order ("24-10" and "U.S" stay whole)."""
    return _WORD_OR_MARK.findall(text)


def word_pieces(text: str) -> list[str]:
    """The plain word runs and punctuation marks of `text`, in order ("U.S" is three pieces)."""
    return _PIECE.findall(text)


def estimate_tokens(text: str) -> int:
    """A model-free token estimate: max(words and punctuation marks, characters / 4)."""
    return max(len(word_pieces(text)), math.ceil(len(text) / 4))


def squeeze_words(text: str) -> str:
    """`text` lower-cased with every run of non-word characters made one space ("Paris, France." -> "paris france")."""
    return re.sub(r"\W+", " ", text.lower()).strip()


def find_span(needle: str, text: str, start: int = 0) -> tuple[int, int] | None:
    """The (start, end) character offsets of `needle` in `text`, with any run of whitespace matching any other.

    `split_sentences` may join the parts of a sentence with one space where the text had a line break or several
    spaces; this finds such a sentence in its source all the same. None when it is not there.
    """
    needle = needle.strip()
    if not needle:
        return None
    found = text.find(needle, start)
    if found >= 0:
        return found, found + len(needle)
    pattern = r"\s+".join(re.escape(part) for part in needle.split())
    match = re.compile(pattern).search(text, start)
    return (match.start(), match.end()) if match else None


def cited_numbers(text: str) -> list[int]:
    """The source numbers cited in `text`, in order of appearance, each once (`[2] ... [1, 2]` gives [2, 1])."""
    numbers: list[int] = []
    for group in CITATION.findall(text):
        for part in group.split(","):
            number = int(part)
            if number not in numbers:
                numbers.append(number)
    return numbers


def strip_citations(text: str) -> str:
    """The text without its `[n]` / `[n, m]` markers (what EM/F1 are computed on)."""
    return CITATION.sub("", text).strip()

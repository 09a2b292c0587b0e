"""Chunking: a Document's Segments → Chunks sized in the embedder's own tokens.

Hard guarantee: `count_tokens(chunk.embed_text) <= max_tokens` for every chunk, checked with the real counter
before a chunk is emitted (the model truncates anything longer, and the rest would be invisible to retrieval), or
with the embedder's slice counts where they are exact (`Embedder.token_spans`: the same numbers from one
tokenisation of each segment).

How:
- Consecutive segments with the same section, page and locator `extra` form a *run*; runs are never merged, so a
  chunk never crosses a markdown section, a code definition, a PDF page, a slide or a sheet. Small segments of one run are packed together.
- A segment too big for one chunk is split recursively at paragraph, line, sentence, clause and word
  boundaries (lines before sentences for code and tables; each part counted once), a part with no boundary left is hard-split by characters; the parts are
  then packed greedily up to the target, and each chunk after the first starts with a tail of about
  `overlap_tokens` of the previous one (whole parts, else sentences, else words).
- The token counter is called O(number of parts + chunks) times, never on growing concatenations.
- A Markdown table (the shape loaders give tables) is split between rows, and a chunk that starts inside a table
  opens with the table's header row again: the one case where a chunk's text is not an exact slice of its
  segment (its offsets are those of the slice).
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from ingest.types import Chunk, Document, Segment
from rag_app.text import SENTENCE_GAP

#: Bump whenever a change here can cut the same text differently: each chunk records it, and a file whose chunks
#: were made by another version (or other sizes) is re-chunked by the next ingest.
CHUNKER_VERSION = 1  # the table-header rule only changes text with Markdown tables, which no loader made before

_PARAGRAPH = re.compile(r"\n[ \t]*\n\s*")
_LINE = re.compile(r"\n\s*")
_SENTENCE = SENTENCE_GAP  # the whitespace after a sentence end; defined once, in rag_app.text
_CLAUSE = re.compile(r"(?<=[;:,])\s+")
_WORD = re.compile(r"\s+")
#: A span with this many words and no coarser boundary is cut in bulk (`_split_words_in_bulk`), not word by word.
_BULK_WORDS = 4096
#: Boundaries tried in order when a span is too big. Prose prefers sentences to (often hard-wrapped) lines;
#: code, tables and notebooks prefer lines.
_PROSE_SEPARATORS = (_PARAGRAPH, _SENTENCE, _LINE, _CLAUSE, _WORD)
_LINE_SEPARATORS = (_PARAGRAPH, _LINE, _SENTENCE, _CLAUSE, _WORD)
_LINE_KINDS = frozenset({"code", "csv", "xlsx", "ods", "notebook"})
#: Where an overlap tail may start inside a unit: sentence then word starts for prose, line starts otherwise.
_PROSE_TAILS = (_SENTENCE, _WORD)
_LINE_TAILS = (_LINE,)
#: A chunk's text may hold at most this many characters per token of budget: catches text a tokenizer maps to
#: very few tokens (e.g. BERT turns any 100+ character "word" into one [UNK]), which retrieval could never see.
_CHARS_PER_TOKEN_CAP = 10
#: A text longer than this many characters per token of budget is probably too big, so it is split without first
#: being counted whole: below the median density a whole count mostly fails and is wasted (SciFact
#: abstracts run 3.2-6.5 characters per MiniLM token, median 4.6). A wrong guess costs time, never correctness.
_LIKELY_TOO_BIG_CHARS_PER_TOKEN = 4.6
#: The title/section header may take at most this share of the token budget; a longer one is truncated.
_HEADER_SHARE = 4

CountTokens = Callable[[str], int]


class SliceCounts(Protocol):
    """Token counts of slices of one text from one tokenisation (`Embedder.token_spans`): exact, or None for a
    slice whose ends cut a word."""

    def count(self, start: int, end: int) -> int | None: ...


#: A text → its slice counter, or None where the embedder's tokenizer cannot give one.
SpanCounter = Callable[[str], "SliceCounts | None"]


def chunking_signature(chunk_tokens: int, overlap_tokens: int, splitter: TextSplitter | None = None) -> str:
    """What decides how a document is cut, as one string stored with each chunk. (The embedder, whose window caps
    the size, is fixed per collection.) Needs no model: an unchanged re-ingest never loads the embedder.

    With a `splitter` (see `split_document`), its class and settings replace the chunk size and overlap."""
    if splitter is not None:
        return f"v{CHUNKER_VERSION}:splitter={describe_splitter(splitter)}"
    return f"v{CHUNKER_VERSION}:chunk={chunk_tokens}:overlap={overlap_tokens}"


class TextSplitter(Protocol):
    """What `split_document` needs of a splitter: LangChain's `TextSplitter` (e.g. `RecursiveCharacterTextSplitter`)
    has it."""

    def split_text(self, text: str) -> list[str]: ...


def describe_splitter(splitter: TextSplitter) -> str:
    """The splitter's class and a hash of its plain settings (sizes, overlap, separators): a stable identity, so a
    re-ingest with the same splitter is unchanged and one with another splitter re-chunks."""
    settings = {key: value for key, value in sorted(vars(splitter).items()) if _plain(value)}
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    return f"{type(splitter).__module__}.{type(splitter).__qualname__}:{digest}"


def _plain(value) -> bool:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return True
    return isinstance(value, (list, tuple)) and all(isinstance(v, (str, int, float, bool)) for v in value)


def split_document(doc: Document, splitter: TextSplitter, count_tokens: CountTokens, max_tokens: int) -> list[Chunk]:
    """Split a document with a user's text splitter instead of ours, keeping the hard limit of `chunk_document`.

    Each segment's text goes through `splitter.split_text`, so pieces still never cross a section or a page; each
    piece gets the same title/section header as our chunks, and a piece whose `embed_text` would exceed
    `max_tokens` is cut further by our chunker. Offsets and lines are found by locating each piece in the segment
    (left unset for a piece the splitter rewrote).

    Args:
        doc: the loaded document.
        splitter: anything with `split_text(str) -> list[str]`, e.g. a LangChain `RecursiveCharacterTextSplitter`.
        count_tokens: the embedder's token counter (without special tokens).
        max_tokens: hard limit on `count_tokens(chunk.embed_text)`.
    """
    if max_tokens < 8:
        raise ValueError(f"max_tokens must be at least 8, got {max_tokens}")
    chunker = _Chunker(doc, count_tokens, max_tokens, max_tokens, 0)
    chunks: list[Chunk] = []
    for seg in doc.segments:
        cursor = 0
        for piece in splitter.split_text(seg.text):
            if not piece.strip():
                continue
            found = seg.text.find(piece, cursor)
            if found < 0:
                found = seg.text.find(piece)
            if found >= 0:
                cursor = found + 1
            chunks.extend(chunker.chunk_run([_piece_segment(seg, piece, found)]))
            chunker._newlines.clear()  # keyed by id(): the next piece's segment may reuse this one's
    return chunks


def _piece_segment(seg: Segment, piece: str, offset: int) -> Segment:
    """A piece of `seg` as a segment of its own, with its lines and offsets when it was found at `offset`."""
    if offset < 0:
        return Segment(piece, section=seg.section, page=seg.page, extra=seg.extra)
    start_line = end_line = None
    if seg.start_line is not None:
        start_line = seg.start_line + seg.text.count("\n", 0, offset)
        end_line = start_line + piece.count("\n")
        if seg.end_line is not None:
            end_line = min(end_line, seg.end_line)
    start_char = None if seg.start_char is None else seg.start_char + offset
    return Segment(piece, section=seg.section, page=seg.page, start_line=start_line, end_line=end_line,
                   start_char=start_char, end_char=None if start_char is None else start_char + len(piece),
                   extra=seg.extra)


def build_header(title: str, section: str) -> str:
    """The context line(s) put before a chunk's text for embedding: title, then section path, without repetition."""
    title, section = title.strip(), section.strip()
    if not section or section == title:
        return title
    if not title or section.startswith(title):
        return section
    return f"{title}\n{section}"


def chunk_document(
    doc: Document,
    count_tokens: CountTokens,
    max_tokens: int,
    overlap_tokens: int = 32,
    target_tokens: int | None = None,
    token_spans: SpanCounter | None = None,
) -> list[Chunk]:
    """Split a document into chunks whose `embed_text` never exceeds `max_tokens` tokens.

    Args:
        doc: the loaded document; its segments carry section, page, lines and offsets.
        count_tokens: the embedder's token counter (without special tokens).
        max_tokens: hard limit on `count_tokens(chunk.embed_text)`, e.g. `Embedder.max_chunk_tokens`.
        overlap_tokens: about this many tokens of a chunk's end are repeated at the start of the next chunk of the
            same segment.
        target_tokens: the size to aim for (header included); defaults to `max_tokens`.
        token_spans: the embedder's `token_spans`, where it has one: slices of a segment are then counted from one
            tokenisation of the segment (the same counts, far fewer tokenizer calls).

    Returns:
        Chunks in document order; deterministic for the same input.

    Raises:
        ValueError: if `max_tokens` is too small to hold a header and some text.
    """
    if max_tokens < 8:
        raise ValueError(f"max_tokens must be at least 8, got {max_tokens}")
    target = max_tokens if target_tokens is None else max(1, min(target_tokens, max_tokens))
    chunker = _Chunker(doc, count_tokens, max_tokens, target, max(0, overlap_tokens), token_spans)
    chunks: list[Chunk] = []
    for run in _runs(doc.segments):
        chunks.extend(chunker.chunk_run(run))
    return chunks


def _runs(segments: list[Segment]) -> list[list[Segment]]:
    runs: list[list[Segment]] = []
    for seg in segments:
        first = runs[-1][0] if runs else None
        if first is not None and (first.section, first.page, first.extra) == (seg.section, seg.page, seg.extra):
            runs[-1].append(seg)
        else:
            runs.append([seg])
    return runs


@dataclass
class _Unit:
    start: int  # offsets into the segment's text
    end: int
    tokens: int


@dataclass
class _Span:
    seg: Segment
    start: int
    end: int


class _Chunker:
    def __init__(self, doc: Document, count: CountTokens, max_tokens: int, target: int, overlap: int,
                 token_spans: SpanCounter | None = None):
        self.doc = doc
        self.count = count
        self.token_spans = token_spans
        self._slice_counts: dict[int, tuple[str, SliceCounts | None]] = {}  # id(text) -> (text, its counter)
        self.max_tokens = max_tokens
        self.target = target
        self.overlap = overlap
        line_first = doc.kind in _LINE_KINDS
        self.separators = _LINE_SEPARATORS if line_first else _PROSE_SEPARATORS
        self.tail_patterns = _LINE_TAILS if line_first else _PROSE_TAILS
        self._newlines: dict[int, list[int]] = {}
        self._prefixes: dict[str, tuple[str, int]] = {}

    # -- one run: segments sharing a section and page ------------------------------------------------------------

    def chunk_run(self, run: list[Segment]) -> list[Chunk]:
        self._slice_counts.clear()  # a run's segments are not seen again: their offsets need not stay in memory
        self.prefix, self.header_tokens = self._prefix(run[0].section)
        self.body_max = self.max_tokens - self.header_tokens
        self.body_target = min(self.body_max, max(self.target - self.header_tokens, min(8, self.body_max)))
        self.char_cap = max(200, self.body_max * _CHARS_PER_TOKEN_CAP)
        overlap = min(self.overlap, self.body_target // 2)

        out: list[Chunk] = []
        pending: list[_Span] = []  # small segments packed into one chunk
        pending_tokens = 0
        for seg in run:
            start, end = _trim(seg.text, 0, len(seg.text))
            if start >= end:
                continue
            likely_too_big = end - start > self.body_max * _LIKELY_TOO_BIG_CHARS_PER_TOKEN
            if len(run) == 1 and not likely_too_big:
                # Common case (a BEIR record, a short section): one exact count of the finished embed text.
                chunk = self._make_chunk([_Span(seg, start, end)])
                body_tokens = chunk.n_tokens - self.header_tokens
                if chunk.n_tokens <= self.max_tokens and body_tokens <= self.body_target:
                    out.append(chunk)
                    continue
                tokens = body_tokens
            else:
                tokens = None if likely_too_big else self._count(seg.text, start, end)
            if tokens is not None and tokens <= self.body_target:
                if pending and pending_tokens + tokens > self.body_target:
                    out.extend(self._emit(pending))
                    pending, pending_tokens = [], 0
                pending.append(_Span(seg, start, end))
                pending_tokens += tokens
                continue
            if pending:
                out.extend(self._emit(pending))
                pending, pending_tokens = [], 0
            units = self._split(seg.text, start, end, self.body_target, 0, tokens, skip_count=likely_too_big)
            out.extend(self._pack(seg, units, self.body_target, overlap))
        if pending:
            out.extend(self._emit(pending))
        return out

    # -- splitting and packing -------------------------------------------------------------------------------

    def _split(
        self, text: str, start: int, end: int, limit: int, level: int, tokens: int | None = None,
        skip_count: bool = False,
    ) -> list[_Unit]:
        """Cut text[start:end] into units of at most `limit` tokens at the coarsest boundaries that work.

        `tokens` is the span's count when already known; `skip_count` says the span is known to be too big.
        """
        start, end = _trim(text, start, end)
        if start >= end:
            return []
        if tokens is None and not skip_count and end - start <= self.char_cap:
            tokens = self._count(text, start, end)
        if tokens is not None and tokens <= limit and end - start <= self.char_cap:
            return [_Unit(start, end, tokens)]
        separators = _LINE_SEPARATORS if text.startswith("|", start) else self.separators  # tables: by rows
        for depth in range(level, len(separators)):
            found = ((m.start(), m.end()) for m in separators[depth].finditer(text, start, end))
            found = ((a, b) for a, b in found if start < a and b < end)
            cuts = list(itertools.islice(found, _BULK_WORDS))
            if not cuts:
                continue
            if len(cuts) == _BULK_WORDS and separators[depth] is _WORD:
                return self._split_words_in_bulk(text, start, end, limit, depth, itertools.chain(cuts, found))
            cuts.extend(found)
            units: list[_Unit] = []
            piece_start = start
            for cut_start, cut_end in cuts:
                units.extend(self._split(text, piece_start, cut_start, limit, depth + 1))
                piece_start = cut_end
            units.extend(self._split(text, piece_start, end, limit, depth + 1))
            return units
        return self._hard_split(text, start, end, limit)

    def _split_words_in_bulk(self, text: str, start: int, end: int, limit: int, depth: int, cuts) -> list[_Unit]:
        """A span of thousands of words with no sentence or clause boundary (a minified file, a log or a text of
        megabytes on one line): cut at word boundaries into pieces of about `limit` tokens by their length, each
        counted once (and split word by word only if over), instead of counting every word on its own."""
        width = max(1, limit * 3)  # characters, then 90 % of what the pieces so far say `limit` tokens take
        units: list[_Unit] = []
        piece_start = start
        for cut_start, cut_end in cuts:
            if cut_start - piece_start >= width:
                pieces = self._split(text, piece_start, cut_start, limit, depth)
                units.extend(pieces)
                if len(pieces) == 1 and pieces[0].tokens:
                    width = max(1, int(0.9 * limit * (cut_start - piece_start) / pieces[0].tokens))
                piece_start = cut_end
        units.extend(self._split(text, piece_start, end, limit, depth))
        return units

    def _hard_split(self, text: str, start: int, end: int, limit: int) -> list[_Unit]:
        """Cut a boundary-free span by characters: the longest prefix within `limit` tokens, repeatedly."""
        units = []
        char_cap = max(1, min(self.char_cap, limit * _CHARS_PER_TOKEN_CAP))
        while start < end:
            good, good_tokens = 0, 0
            bad = min(end - start, char_cap) + 1
            probe = min(end - start, max(1, limit * 3), char_cap)
            while True:  # grow until too long (or the whole allowance fits), then bisect
                tokens = self.count(text[start : start + probe])
                if tokens <= limit:
                    good, good_tokens = probe, tokens
                    if probe >= bad - 1:
                        break
                    probe = min(probe * 2, bad - 1)
                else:
                    bad = probe
                    break
            while bad - good > 1:
                mid = (good + bad) // 2
                tokens = self.count(text[start : start + mid])
                if tokens <= limit:
                    good, good_tokens = mid, tokens
                else:
                    bad = mid
            if good == 0:  # a single character over the limit: nothing smaller exists, keep it alone
                good, good_tokens = 1, self.count(text[start : start + 1])
            units.append(_Unit(start, start + good, good_tokens))
            start += good
        return units

    def _pack(self, seg: Segment, units: list[_Unit], limit: int, overlap: int) -> list[Chunk]:
        """Greedily pack consecutive units up to `limit` tokens, each chunk opening with the previous one's tail."""
        out: list[Chunk] = []
        text = seg.text
        i, n = 0, len(units)
        tail: tuple[int, int] | None = None  # (start offset, tokens) of the overlap carried into the next chunk
        # Room for a repeated table header (see _table_header) in chunks that start at a table row.
        reserve = max((self.count(m.group()) for m in _TABLE_HEAD.finditer(text)), default=0) if "| -" in text else 0
        while i < n:
            start, tokens, j = units[i].start, units[i].tokens, i + 1
            if tail is not None and tail[1] + tokens <= limit:
                start, tokens = tail[0], tokens + tail[1]
            room = limit - reserve if reserve and text.startswith("|", start) and start > 0 else limit
            while j < n and tokens + units[j].tokens <= room:
                tokens += units[j].tokens
                j += 1
            out.extend(self._emit([_Span(seg, start, units[j - 1].end)]))
            tail = self._tail(text, units, i, j, overlap) if j < n and overlap > 0 else None
            i = j
        return out

    def _tail(self, text: str, units: list[_Unit], i: int, j: int, overlap: int) -> tuple[int, int] | None:
        """About `overlap` tokens from the end of units[i:j], starting at a unit, sentence or word boundary.

        Whole units are used when they fit (their counts are known); otherwise the start inside the last unit is
        estimated from its characters per token, snapped to a boundary and counted (rarely more than once).
        """
        tokens, k = 0, j
        while k > i + 1 and tokens + units[k - 1].tokens <= overlap:  # never the whole chunk
            k -= 1
            tokens += units[k].tokens
        if k < j:
            return units[k].start, tokens
        last = units[j - 1]
        chars_per_token = (last.end - last.start) / max(1, last.tokens)
        pos = self._boundary_after(text, last.end - int(overlap * chars_per_token), last.start, last.end)
        for _ in range(3):
            if pos is None:
                return None
            tokens = self._count(text, pos, last.end)
            if tokens <= overlap:
                return (pos, tokens) if tokens > 0 else None
            pos = self._boundary_after(text, pos + int((tokens - overlap) * chars_per_token) + 1, pos + 1, last.end)
        return None

    def _boundary_after(self, text: str, pos: int, lo: int, hi: int) -> int | None:
        """The first tail boundary at or after `pos`: a sentence start if it keeps at least half the tail, else a
        word start (prose); a line start (code, tables)."""
        pos = max(pos, lo + 1)
        for pattern in _LINE_TAILS if text.startswith("|", lo) else self.tail_patterns:  # a table row: whole rows
            match = pattern.search(text, pos - 1, hi)
            if match is None or match.end() >= hi:
                continue
            if pattern is _SENTENCE and match.end() - pos > (hi - pos) // 2:
                continue
            return match.end()
        return None

    # -- emitting, with the hard limit checked --------------------------------------------------------------

    def _emit(self, spans: list[_Span], limit: int | None = None) -> list[Chunk]:
        chunk = self._make_chunk(spans)
        if chunk.n_tokens <= self.max_tokens:
            return [chunk] if chunk.text else []
        # The tokenizer is not additive over this join (or a unit was miscounted): re-split with less room.
        if len(spans) > 1:
            return [c for span in spans for c in self._emit([span])]
        span = spans[0]
        if limit is not None and limit <= 1:  # unreachable while the header keeps within its share
            raise ValueError(f"cannot fit text into {self.max_tokens} tokens after a {self.header_tokens}-token header")
        budget = (self.body_target if limit is None else limit) - (chunk.n_tokens - self.max_tokens)
        budget = max(1, min(budget, (limit or self.body_target) - 1))
        units = self._split(span.seg.text, span.start, span.end, budget, 0)
        if len(units) == 1 and (units[0].start, units[0].end) == (span.start, span.end):
            units = self._hard_split(span.seg.text, span.start, span.end, budget)
        out: list[Chunk] = []
        i = 0
        while i < len(units):
            tokens, j = units[i].tokens, i + 1
            while j < len(units) and tokens + units[j].tokens <= budget:
                tokens += units[j].tokens
                j += 1
            out.extend(self._emit([_Span(span.seg, units[i].start, units[j - 1].end)], budget))
            i = j
        return out

    def _make_chunk(self, spans: list[_Span]) -> Chunk:
        if self.separators is _LINE_SEPARATORS:  # keep the first line's indentation (whitespace: no tokens)
            for span in spans:
                while span.start > 0 and span.seg.text[span.start - 1] in " \t":
                    span.start -= 1
        first, last = spans[0], spans[-1]
        body = "\n\n".join(span.seg.text[span.start : span.end] for span in spans)
        header = _table_header(first.seg.text, first.start)
        if header:
            body = header + body
        embed_text = self.prefix + body
        return Chunk(
            text=body,
            embed_text=embed_text,
            doc_id=self.doc.doc_id,
            title=self.doc.title,
            section=first.seg.section,
            page=first.seg.page,
            start_line=self._line(first.seg, first.start),
            end_line=self._line(last.seg, max(last.start, last.end - 1)),
            start_char=None if first.seg.start_char is None else first.seg.start_char + first.start,
            end_char=None if last.seg.start_char is None else last.seg.start_char + last.end,
            n_tokens=self._chunk_tokens(spans, header, embed_text),
            extra=dict(first.seg.extra),
        )

    # -- counting ------------------------------------------------------------------------------------------------

    def _count(self, text: str, start: int, end: int) -> int:
        """`count(text[start:end])`, from the text's slice counter where it has one and the slice cuts no word."""
        tokens = self._slice_count(text, start, end)
        return self.count(text[start:end]) if tokens is None else tokens

    def _slice_count(self, text: str, start: int, end: int) -> int | None:
        """The slice's count from one tokenisation of `text`, or None (no slice counter, or the slice cuts a word)."""
        if self.token_spans is None:
            return None
        cached = self._slice_counts.get(id(text))  # the entry holds the text, so its id is not reused meanwhile
        if cached is None:
            cached = self._slice_counts[id(text)] = (text, self.token_spans(text))
        return cached[1].count(start, end) if cached[1] is not None else None

    def _chunk_tokens(self, spans: list[_Span], table_header: str, embed_text: str) -> int:
        """`count(embed_text)`. With slice counters it is the sum of its parts: the header ends in a blank line
        and the spans are joined by one, and whitespace separates words for such a tokenizer."""
        total = self.header_tokens + (self.count(table_header) if table_header else 0)
        for span in spans:
            tokens = self._slice_count(span.seg.text, span.start, span.end)
            if tokens is None:
                return self.count(embed_text)
            total += tokens
        return total

    def _line(self, seg: Segment, offset: int) -> int | None:
        if seg.start_line is None:
            return None
        newlines = self._newlines.get(id(seg))
        if newlines is None:
            newlines = [m.start() for m in re.finditer("\n", seg.text)]
            self._newlines[id(seg)] = newlines
        line = seg.start_line + bisect.bisect_left(newlines, offset)
        return min(line, seg.end_line) if seg.end_line is not None else line

    def _prefix(self, section: str) -> tuple[str, int]:
        """The header plus its blank line, and its tokens; a header over its share of the budget is cut short."""
        cached = self._prefixes.get(section)
        if cached is not None:
            return cached
        header = build_header(self.doc.title, section)
        if not header:
            self._prefixes[section] = ("", 0)
            return "", 0
        limit = max(1, self.max_tokens // _HEADER_SHARE)
        tokens = self.count(header + "\n\n")
        if tokens > limit:
            good, bad = 0, min(len(header), limit * _CHARS_PER_TOKEN_CAP) + 1
            while bad - good > 1:
                mid = (good + bad) // 2
                if self.count(header[:mid] + "…\n\n") <= limit:
                    good = mid
                else:
                    bad = mid
            header = header[:good].rstrip() + "…"
            tokens = self.count(header + "\n\n")
        self._prefixes[section] = (header + "\n\n", tokens)
        return self._prefixes[section]


_TABLE_RULE = re.compile(r"\|(?:\s*:?-{3,}:?\s*\|)+")
_TABLE_HEAD = re.compile(r"^\|[^\n]*\|\n\|(?:\s*:?-{3,}:?\s*\|)+$", re.M)
_MAX_TABLE_HEADER_CHARS = 400  # a longer header would crowd out the rows it is meant to explain


def _table_header(text: str, start: int) -> str:
    """The header and rule lines ("| a | b |\n| --- | --- |\n") of the Markdown table whose body row begins at
    `start`, when both lie before `start`; else ""."""
    if not text.startswith("|", start) or (start > 0 and text[start - 1] != "\n"):
        return ""
    lines_before = text[:start].split("\n")[:-1]  # whole lines above the chunk, nearest last
    block = []
    for line in reversed(lines_before):
        if not (line.startswith("|") and line.rstrip().endswith("|")):
            break
        block.append(line)
    block.reverse()
    if len(block) < 2 or not _TABLE_RULE.fullmatch(block[1].strip()):
        return ""
    header = block[0] + "\n" + block[1] + "\n"
    return header if len(header) <= _MAX_TABLE_HEADER_CHARS else ""


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end

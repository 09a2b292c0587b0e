"""Small pieces the pages share: progress bars, source cards with the cited span highlighted, timings."""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import streamlit as st

_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_WORD = re.compile(r"[A-Za-z0-9]+(?:['’-][A-Za-z0-9]+)*")
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~:$])")
_CITATION = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")
_STOPWORDS = frozenset("""a an and are as at be by for from has have in is it its of on or that the this to was were
with which who what when where how why not no do does did can could would should will than then there these those
they their them we you i he she our your""".split())
SNIPPET_CHARS = 600


# -- progress ------------------------------------------------------------------------------------------------------
def progress_reporter(bar) -> Callable[[Any], None]:
    """An ingest progress callback that drives a `st.progress` bar with counts."""

    def report(snapshot) -> None:
        total = max(snapshot.files_total, 1)
        fraction = min(snapshot.files_done / total, 1.0)
        text = f"{snapshot.files_done}/{snapshot.files_total} files · {snapshot.chunks_written} chunks written"
        if snapshot.current:
            text += f" · {snapshot.current}"
        bar.progress(fraction, text=text)

    return report


# -- collections ---------------------------------------------------------------------------------------------------
def collection_picker(rag, where=None) -> str:
    """The collection to work on, shared by the Chat and Ingest pages; drawn in `where` (default the sidebar)."""
    names = [info.name for info in rag.collections()]
    default = rag.settings.store.collection
    current = st.session_state.get("collection") or default
    options = sorted(set(names) | {default, current})
    st.session_state["collection"] = current
    with where if where is not None else st.sidebar:
        st.selectbox("Collection", options, key="collection")
    return st.session_state["collection"]


# -- streaming -----------------------------------------------------------------------------------------------------
class TokenStream:
    """Wraps `RAG.stream`: iterating yields only the text pieces (for `st.write_stream`) and keeps the `Answer`."""

    def __init__(self, items: Iterable[Any]):
        self._items = items
        self.answer: Any = None

    def __iter__(self) -> Iterator[str]:
        for item in self._items:
            if isinstance(item, str):
                yield item
            else:
                self.answer = item


# -- source cards --------------------------------------------------------------------------------------------------
def field(obj: Any, name: str, default: Any = None) -> Any:
    """An attribute of a dataclass-like source, or a key of a dict-like one."""
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


def words(text: str) -> set[str]:
    return {w.lower() for w in _WORD.findall(text) if w.lower() not in _STOPWORDS}


def cited_span(text: str, answer: str, min_overlap: float = 0.0) -> tuple[int, int] | None:
    """The (start, end) of the sentence of `text` that shares the most content words with `answer`.

    A sentence qualifies only when the shared words cover at least `min_overlap` of its content words.
    """
    answer_words = words(answer)
    if not answer_words:
        return None
    best, best_score, start = None, 0.0, 0
    for piece in _SENTENCE.split(text):
        begin = text.find(piece, start)
        start = begin + len(piece)
        sentence_words = words(piece)
        if not sentence_words:
            continue
        shared = len(sentence_words & answer_words)
        score = shared / len(sentence_words) ** 0.5
        if shared and shared / len(sentence_words) >= min_overlap and score > best_score:
            best, best_score = (begin, begin + len(piece)), score
    return best


def citing_sentences(answer: str, n: Any) -> str:
    """The sentences of `answer` that cite source `n` as `[n]` (or `[1, n]`); "" when none does."""
    cited = []
    for sentence in re.split(r"(?<=[.!?])\s+", answer):
        for group in _CITATION.findall(sentence):
            if str(n) in re.split(r"\s*,\s*", group):
                cited.append(_CITATION.sub("", sentence))
                break
    return " ".join(cited)


def escape_markdown(text: str) -> str:
    """Plain text made safe for `st.markdown`: no HTML, no markdown syntax."""
    return _MD_SPECIAL.sub(r"\\\1", html.escape(text, quote=False))


def highlighted_snippet(text: str, answer: str, n: Any = None, limit: int = SNIPPET_CHARS) -> str:
    """Markdown for a snippet of `text` around the span the answer cites, which is wrapped in `<mark>`.

    The span is the source sentence closest to the answer sentences citing `[n]`; for a source the answer does not
    cite, a sentence is marked only when most of its words occur in the answer.
    """
    text = " ".join(text.split())
    citing = citing_sentences(answer, n) if n is not None else ""
    span = cited_span(text, citing) if citing else cited_span(text, answer, min_overlap=0.6)
    if span is None:
        return escape_markdown(text[:limit]) + ("…" if len(text) > limit else "")
    begin, end = span
    room = max(limit - (end - begin), 0)
    left = max(begin - room // 2, 0)
    right = min(end + room - (begin - left), len(text))
    before, cited, after = text[left:begin], text[begin:end], text[end:right]
    return ("…" if left > 0 else "") + escape_markdown(before) + "<mark>" + escape_markdown(cited) + "</mark>" + \
        escape_markdown(after) + ("…" if right < len(text) else "")


def source_label(source: Any) -> str:
    """`[n] file — section or page · score`."""
    parts = [f"[{field(source, 'n', '?')}] {field(source, 'source', '') or 'unknown source'}"]
    where = field(source, "section") or ""
    page = field(source, "page")
    if page not in (None, "", 0):
        where = f"{where}, p. {page}" if where else f"page {page}"
    if where:
        parts.append(f" — {where}")
    score = field(source, "score")
    if isinstance(score, (int, float)):
        parts.append(f" · score {score:.2f}")
    if field(source, "cited", False):
        parts.append(" · cited")
    return "".join(parts)


def format_lines(lines: Any) -> str:
    if not lines:
        return ""
    if isinstance(lines, str) and "-" in lines:
        lines = tuple(lines.split("-", 1))
    if isinstance(lines, (list, tuple)) and len(lines) == 2:
        return f"line {lines[0]}" if str(lines[0]) == str(lines[1]) else f"lines {lines[0]}–{lines[1]}"
    return f"line {lines}"


def source_cards(sources: Iterable[Any], answer_text: str, full_text: bool = False) -> None:
    """One expander per numbered source: where it comes from, and the snippet with the cited span highlighted."""
    for source in sources:
        with st.expander(source_label(source)):
            details = [d for d in (field(source, "title"), format_lines(field(source, "lines"))) if d]
            if details:
                st.caption(" · ".join(str(d) for d in details))
            text = field(source, "text", "") or ""
            if full_text:
                st.text(text)
            else:
                st.markdown(highlighted_snippet(text, answer_text, field(source, "n")), unsafe_allow_html=True)


def timings_caption(timings: dict[str, Any] | None, model: str | None = None) -> str:
    """`retrieve 12 ms · first token 80 ms · total 420 ms · model`."""
    parts = []
    for key, value in (timings or {}).items():
        if isinstance(value, (int, float)):
            label = key.removesuffix("_ms").removesuffix("_s").replace("_", " ")
            millis = value * 1000 if key.endswith("_s") else value
            parts.append(f"{label} {millis:,.0f} ms")
    if model:
        parts.append(str(model))
    return " · ".join(parts)

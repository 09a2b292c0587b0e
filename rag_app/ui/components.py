"""Small pieces the pages share: progress bars, source cards with the cited span highlighted (and, for a PDF, the
page itself with the cited sentences boxed), timings."""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import streamlit as st

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~:$])")
SNIPPET_CHARS = 600


# -- progress ------------------------------------------------------------------------------------------------------
def progress_reporter(bar) -> Callable[[Any], None]:
    """An ingest progress callback that drives a `st.progress` bar with counts."""

    def report(snapshot) -> None:
        total = max(snapshot.files_total, 1)
        pages_total = getattr(snapshot, "pages_total", 0)
        # While a file is OCR'd (slow), its pages move the bar through most of that file's share (the rest is for
        # chunking and embedding it).
        within = 0.9 * snapshot.pages_done / pages_total if pages_total and snapshot.files_done < total else 0.0
        fraction = min((snapshot.files_done + within) / total, 1.0)
        text = f"{snapshot.files_done}/{snapshot.files_total} files · {snapshot.chunks_written} chunks written"
        if pages_total:
            text += f" · OCR page {snapshot.pages_done}/{pages_total}"
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


def escape_markdown(text: str) -> str:
    """Plain text made safe for `st.markdown`: no HTML, no markdown syntax."""
    return _MD_SPECIAL.sub(r"\\\1", html.escape(text, quote=False))


def _collapsed_offset(text: str, offset: int, end: bool = False) -> int:
    """Where `text[offset]` lands (or, with `end`, where a span ending at `offset` ends) once every run of whitespace
    in `text` is collapsed to one space and the ends are stripped."""
    before = " ".join(text[:offset].split())
    if end or not before or not text[offset - 1].isspace():
        return len(before)
    return len(before) + 1  # past the one space that separates it from what comes before


def highlighted_snippet(text: str, spans: Sequence[Sequence[int]] = (), limit: int = SNIPPET_CHARS) -> str:
    """Markdown for a snippet of `text` with the cited `spans` ((start, end) offsets into `text`) in `<mark>`.

    Whitespace is collapsed. A text longer than `limit` is cut to a window around the first span (the one the
    answer rests on most); other spans are marked where they fall inside it. Without spans, the text's start.
    """
    flat = " ".join(text.split())
    marks = []
    for start, end in spans:
        if 0 <= start < end <= len(text):
            begin, stop = _collapsed_offset(text, start), _collapsed_offset(text, end, end=True)
            if begin < stop:
                marks.append((begin, stop))
    if not marks:
        return escape_markdown(flat[:limit]) + ("…" if len(flat) > limit else "")
    begin, end = marks[0]
    room = max(limit - (end - begin), 0)
    left = max(begin - room // 2, 0)
    right = min(end + room - (begin - left), len(flat))
    if right - left < limit:  # a span near the end: use the room on the left
        left = max(right - max(limit, end - begin), 0)
    inside = sorted({(max(b, left), min(e, right)) for b, e in marks if b < right and e > left})
    out, position = [], left
    for b, e in inside:
        if b < position:  # overlaps a span already marked
            b = position
            if b >= e:
                continue
        out.append(escape_markdown(flat[position:b]) + "<mark>" + escape_markdown(flat[b:e]) + "</mark>")
        position = e
    out.append(escape_markdown(flat[position:right]))
    return ("…" if left > 0 else "") + "".join(out) + ("…" if right < len(flat) else "")


def source_label(source: Any) -> str:
    """`[n] file — section or page · score`."""
    parts = [f"[{field(source, 'n', '?')}] {field(source, 'source', '') or 'unknown source'}"]
    where = field(source, "section") or ""
    locate = getattr(source, "location", None)
    place = locate(lines=False) if callable(locate) else ""
    page = field(source, "page")
    if not place and page not in (None, "", 0):
        place = f"page {page}"
    if place:
        where = f"{where}, {place}" if where else place
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


def card_details(source: Any) -> str:
    """The line beside the snippet: the title and the full locator ("slide 4", "sheet Q3, rows 2-9",
    "page 3 (OCR)", "lines 10-20"), or the lines for a plain dict source."""
    locate = getattr(source, "location", None)
    place = locate() if callable(locate) else format_lines(field(source, "lines"))
    return " · ".join(str(d) for d in (field(source, "title"), place) if d)


def is_pdf_page(source: Any) -> bool:
    """Whether the card can show its page: a chunk of a PDF with a page number."""
    return str(field(source, "source", "")).lower().endswith(".pdf") and field(source, "page") not in (None, "", 0)


def source_cards(sources: Iterable[Any], full_text: bool = False, rag: Any = None, collection: str | None = None,
                 key: str = "cards") -> None:
    """One expander per numbered source: where it comes from, and the snippet with its `cited_spans` highlighted
    (the sentences the answer service says the answer rests on).

    With `rag` (and the `collection` the answer came from), a PDF source's card has a "Show page" toggle that draws
    the page with the cited sentences boxed (`page_view`); `key` keeps the toggles of different answers apart.
    """
    for index, source in enumerate(sources):
        toggle_key = f"{key}_page_{index}"
        # A card whose page is shown stays open across the rerun its toggle causes.
        with st.expander(source_label(source), expanded=bool(st.session_state.get(toggle_key))):
            details = card_details(source)
            if details:
                st.caption(details)
            text = field(source, "text", "") or ""
            if full_text:
                st.text(text)
            else:
                spans = field(source, "cited_spans", None) or []
                st.markdown(highlighted_snippet(text, spans), unsafe_allow_html=True)
            if rag is not None and is_pdf_page(source):
                if st.toggle("Show page", key=toggle_key,
                             help="The PDF page, with the cited sentences highlighted"):
                    page_view(rag, collection, source)


def page_view(rag: Any, collection: str | None, source: Any) -> None:
    """The source's PDF page as an image with its cited sentences highlighted, or a note saying why it cannot be
    shown (the file is gone, or is not a PDF file on this machine)."""
    from rag_app.services.page_view import cited_pdf, sentences_of

    text = field(source, "text", "") or ""
    cited = cited_pdf(rag.store(collection), str(field(source, "source", "")), field(source, "page"), text,
                      field(source, "locator", None))
    if cited.path is None:
        st.info(f"The page cannot be shown: {cited.reason}.", icon=":material/hide_image:")
        return
    sentences = tuple(sentences_of(text, field(source, "cited_spans", None) or []))
    with st.spinner(f"Rendering page {cited.page}…"):
        view = _rendered_page(str(cited.path), cited.path.stat().st_mtime_ns, cited.page, sentences, cited.ocr,
                              rag.settings.ingest.ocr_engine)
    caption = f"Page {view.page} of {field(source, 'source', '')}"
    if view.highlighted:
        caption += ", the cited sentence highlighted" if view.found == 1 else ", the cited sentences highlighted"
    st.image(view.png, caption=caption, width="stretch", output_format="PNG")  # JPEG would blur the glyphs
    if view.note:
        st.caption(f"Note: {view.note}.")
    elif not sentences:
        st.caption("This source is not cited by the answer: nothing is highlighted.")


@st.cache_data(show_spinner=False, max_entries=64)
def _rendered_page(path: str, mtime_ns: int, page: int, sentences: tuple[str, ...], ocr: bool, ocr_engine: str):
    """`render_page`, cached by file, modification time (a changed file is drawn anew), page and sentences."""
    del mtime_ns  # part of the cache key only
    from rag_app.services.page_view import render_page

    return render_page(path, page, sentences, ocr=ocr, ocr_engine=ocr_engine)


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

"""HTML: the page's main content (scripts, styles, navigation, banners, footers, sidebars and cookie notices
dropped; only `<main>` or the one `<article>` when the page has one), one segment per `h1`–`h3` section; tables
become Markdown tables.

Main-content extraction is a few structural rules (HTML5 landmarks, ARIA roles, tell-tale class/id words) rather
than a library: trafilatura's dependency tree is large, and these rules keep every heading of the content."""

from __future__ import annotations

import re

from ingest.loaders.base import TextLoader, default_title
from ingest.loaders.segments import Joiner, heading_path, push_heading
from ingest.loaders.tables import markdown_table
from ingest.types import Document, LoadError

_HTML_DROP = ("script", "style", "nav", "noscript", "template", "svg", "iframe", "head")
_HTML_BLOCK = frozenset(
    "address article aside blockquote body br dd details div dl dt fieldset figcaption figure footer form h4 h5 h6 "
    "header hr li main ol p pre section summary table tbody thead tfoot tr ul caption".split()
)
_HTML_PARAGRAPH = frozenset("p pre table ul ol dl blockquote h4 h5 h6 figure".split())
_HTML_CELL = frozenset({"td", "th"})
_PARA_BREAK = "\x1e"  # stands for a blank line until the text is tidied
_PRE_NEWLINE = "\x1f"  # a newline inside <pre>, kept verbatim by the tidying
_HTML_SECTION = {"h1": 1, "h2": 2, "h3": 3}


class HtmlLoader(TextLoader):
    """Blocks become lines and paragraphs, table cells are joined by " | ", `<pre>` keeps its lines."""

    suffixes = frozenset({".html", ".htm", ".xhtml"})

    def load_text(self, text: str, rel: str, suffix: str) -> Document:
        from bs4 import BeautifulSoup, Comment, NavigableString, Tag
        from bs4.element import Declaration, Doctype, ProcessingInstruction

        if nesting_depth(text) > MAX_DEPTH:
            return _flat_document(text, rel)
        soup = BeautifulSoup(text, "html.parser")
        title = ""
        if soup.title and soup.title.get_text(strip=True):
            title = " ".join(soup.title.get_text().split())
        if not title:
            h1 = soup.find("h1")
            if h1:
                title = " ".join(h1.get_text(" ").split())
        for tag in soup(list(_HTML_DROP)):
            tag.decompose()
        root = _main_content(soup)

        joiner = Joiner()
        stack: list[tuple[int, str]] = []
        section = ""
        parts: list[str] = []
        skip_types = (Comment, Doctype, Declaration, ProcessingInstruction)

        tables: list[str] = []

        def flush() -> None:
            text = _tidy_extracted("".join(parts))
            if tables:  # put the tables back where their placeholders stand (the tidying would mangle them)
                text = re.sub(r"\ue000(\d+)\ue000", lambda m: tables[int(m.group(1))], text)
            joiner.add(text, section=section)
            parts.clear()

        def walk(node: Tag, in_pre: bool) -> None:
            nonlocal section
            for child in node.children:
                if isinstance(child, NavigableString):
                    if not isinstance(child, skip_types):
                        # Preformatted text keeps its lines and indentation through the tidying below.
                        piece = str(child)
                        parts.append(piece.replace("\n", _PRE_NEWLINE) if in_pre else re.sub(r"\s+", " ", piece))
                    continue
                if not isinstance(child, Tag):
                    continue
                name = child.name.lower() if child.name else ""
                if name in _HTML_SECTION:
                    flush()
                    heading = " ".join(child.get_text(" ").split())
                    if heading:
                        push_heading(stack, _HTML_SECTION[name], heading)
                        section = heading_path(stack)
                    continue
                if name == "table":
                    table = _markdown_of(child)
                    if table:
                        tables.append(table)
                        parts.append(f"{_PARA_BREAK}\ue000{len(tables) - 1}\ue000{_PARA_BREAK}")
                    continue
                if name in _HTML_BLOCK:
                    brk = _PARA_BREAK if name in _HTML_PARAGRAPH else "\n"
                    parts.append(brk)
                    walk(child, in_pre or name == "pre")
                    parts.append(brk)
                elif name in _HTML_CELL:
                    parts.append(" | ")
                    walk(child, in_pre)
                else:
                    walk(child, in_pre or name == "pre")

        try:
            walk(root, False)
        except RecursionError as exc:
            raise LoadError("HTML too deeply nested") from exc
        flush()
        if not joiner.segments:
            raise LoadError("no text in HTML")
        return Document(doc_id=rel, title=title or default_title(rel), kind="html", segments=joiner.segments)


#: Element nesting read as a tree at most. Real pages stay under ~60 levels; a page of 200,000 unclosed `<div>`s
#: kept the tree builder busy for minutes (and the walk below recurses once a level), so a deeper page is read
#: as flat text (its tags stripped, its paragraphs kept) instead.
MAX_DEPTH = 256
_TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9:-]*)[^>]*?(/?)>")
#: Elements that never hold others, and those whose end tag may be left out (they would count as nesting).
_VOID = frozenset("area base br col embed hr img input link meta param source track wbr p li dt dd tr td th "
                  "option optgroup thead tbody tfoot colgroup caption rp rt".split())


def nesting_depth(text: str) -> int:
    """How deep the page's elements nest (one linear pass over its tags; unclosed elements count as open)."""
    stack: list[str] = []
    open_counts: dict[str, int] = {}
    deepest = 0
    for match in _TAG.finditer(text):
        closing, name, self_closing = match.group(1), match.group(2).lower(), match.group(3)
        if name in _VOID or self_closing:
            continue
        if not closing:
            stack.append(name)
            open_counts[name] = open_counts.get(name, 0) + 1
            deepest = max(deepest, len(stack))
        elif open_counts.get(name):
            while stack:  # close up to the matching element (each element is closed once: linear overall)
                top = stack.pop()
                open_counts[top] -= 1
                if top == name:
                    break
    return deepest


def _drop_elements(text: str, names: tuple[str, ...]) -> str:
    """`text` without those elements and their content (one pass: an unclosed one runs to the end)."""
    lower = text.lower()
    out, position = [], 0
    for match in re.finditer(r"<(%s)\b" % "|".join(names), lower):
        if match.start() < position:
            continue
        out.append(text[position:match.start()])
        end = lower.find(f"</{match.group(1)}", match.end())
        position = len(text) if end < 0 else lower.find(">", end) + 1 or len(text)
    out.append(text[position:])
    return " ".join(out)


def _flat_document(text: str, rel: str) -> Document:
    """A page too deeply nested to read as a tree: its text with the tags stripped, block ends as line breaks."""
    import html as html_module

    text = _drop_elements(text, ("script", "style", "template"))
    text = re.sub(r"(?i)</?(?:p|div|br|li|h[1-6]|tr|table|section|article)\b[^>]*>", "\n", text)
    text = html_module.unescape(re.sub(r"<[^>]*>", " ", text))
    lines = [" ".join(line.split()) for line in text.split("\n")]
    body = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    if not body:
        raise LoadError(f"no text in HTML (nested over {MAX_DEPTH} levels deep, read as flat text)")
    joiner = Joiner()
    joiner.add(body)
    return Document(doc_id=rel, title=default_title(rel), kind="html", segments=joiner.segments)


_LANDMARKS = ("header", "footer", "aside")  # page chrome, unless inside the main content
_CHROME_ROLES = frozenset({"navigation", "banner", "contentinfo", "complementary", "search"})
_CHROME_WORDS = frozenset(
    "nav navbar navigation menu menubar breadcrumb breadcrumbs sidebar footer cookie cookies consent banner "
    "share social skip subscribe newsletter advert ads advertisement promo related".split()
)


def _main_content(soup):
    """Drop page chrome from `soup` and return the element to read: the one `<main>`/`<article>`, else the page."""
    for tag in soup.find_all(True):
        if getattr(tag, "decomposed", False) or tag.name in ("html", "body", "main", "article"):
            continue
        in_content = tag.find_parent(["main", "article"]) is not None
        role = str(tag.get("role") or "").lower()
        words = {w for value in (tag.get("class") or []) + [str(tag.get("id") or "")]
                 for w in re.split(r"[-_\s]+", str(value).lower()) if w}
        chrome = (tag.name in _LANDMARKS and not in_content) or role in _CHROME_ROLES or bool(words & _CHROME_WORDS)
        if chrome and tag.find("h1") is None:
            tag.decompose()
    for candidates in (soup.find_all("main"), soup.find_all(attrs={"role": "main"}), soup.find_all("article")):
        if len(candidates) == 1:
            return candidates[0]
    return soup


def _markdown_of(table) -> str:
    """A `<table>` as a Markdown table (its own rows only, not those of tables nested in it)."""
    rows = []
    for row in table.find_all("tr"):
        if row.find_parent("table") is not table:
            continue
        rows.append([cell.get_text(" ") for cell in row.find_all(["th", "td"], recursive=False)])
    return markdown_table(rows)


def _tidy_extracted(text: str) -> str:
    """Strip each line and drop leading cell separators.

    Line breaks stay single; paragraph breaks become one blank line.
    """
    lines = []
    for line in text.replace(_PARA_BREAK, "\n\x1e\n").split("\n"):
        line = line.strip(" \t")
        if line.startswith("|"):
            line = line.lstrip("| ").strip()
        if line:
            lines.append(line)
    text = "\n".join(lines)
    text = re.sub(r"\n?(?:\x1e\n?)+", "\n\n", text).strip()
    return re.sub(r"\n{3,}", "\n\n", text.replace(_PRE_NEWLINE, "\n")).strip()


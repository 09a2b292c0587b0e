"""HTML: the page's main content (scripts, styles, navigation, banners, footers, sidebars and cookie notices
dropped; only `<main>` or the one `<article>` when the page has one), one segment per `h1`–`h3` section; tables
become Markdown tables. Read as a person reads the page:

- a single `<br>` inside a sentence is a space (a word hyphenated by hand at one is rejoined), between short lines
  (an address) it stays a line break (`line_breaks`); two or more `<br>` in a row part paragraphs;
- list items become "- item" / "1. item" lines (an `<ol>`'s `start` and an item's `value` kept), nested lists
  indented, and a list follows its lead-in paragraph on the next line (`list_items`);
- NFKC (`characters`).

Main-content extraction is a few structural rules (HTML5 landmarks, ARIA roles, tell-tale class/id words) rather
than a library: trafilatura's dependency tree is large, and these rules keep every heading of the content."""

from __future__ import annotations

import re

from ingest.loaders.base import TextLoader, default_title
from ingest.loaders.characters import normalise
from ingest.loaders.line_breaks import join_soft_breaks
from ingest.loaders.list_items import counter_text
from ingest.loaders.segments import Joiner, heading_path, push_heading
from ingest.loaders.tables import markdown_table
from ingest.loaders.vocabulary import DocumentWords
from ingest.types import Document, LoadError

_HTML_DROP = ("script", "style", "nav", "noscript", "template", "svg", "iframe", "head")
_HTML_BLOCK = frozenset(
    "address article aside blockquote body dd details div dl dt fieldset figcaption figure footer form h4 h5 h6 "
    "header hr li main ol p pre section summary table tbody thead tfoot tr ul caption".split()
)
_HTML_PARAGRAPH = frozenset("p pre table ul ol dl blockquote h4 h5 h6 figure".split())
_HTML_CELL = frozenset({"td", "th"})
_PARA_BREAK = "\x1e"  # stands for a blank line until the text is tidied
_PRE_NEWLINE = "\x1f"  # a newline inside <pre>, kept verbatim by the tidying
_SOFT_BREAK = "\x1c"  # a <br> outside <pre>: a space or a line break, decided by `line_breaks`
_INDENT = "\x1a"  # one level of list nesting, two spaces once the lines are stripped
#: <ol type="..."> → `list_items.counter_text` styles
_OL_TYPES = {"a": "lower-letter", "A": "upper-letter", "i": "lower-roman", "I": "upper-roman"}
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

        stack: list[tuple[int, str]] = []
        section = ""
        parts: list[str] = []
        skip_types = (Comment, Doctype, Declaration, ProcessingInstruction)

        tables: list[str] = []
        sections: list[tuple[str, str]] = []  # (raw text, section), tidied once the whole page's words are known
        item_open = False  # a list marker was just written: its item's text follows on the same line

        def flush() -> None:
            sections.append(("".join(parts), section))
            parts.clear()

        def add_break(brk: str) -> None:
            if not item_open:
                parts.append(brk)

        def open_list(depth: int) -> None:
            """Before a list: the lead-in paragraph just closed is kept on the line above the first item."""
            if depth == 0:
                while parts and (not parts[-1].strip() or parts[-1] == _PARA_BREAK):
                    parts.pop()
                parts.append("\n" if parts and not parts[-1].endswith("\ue000") else _PARA_BREAK)
            else:
                add_break("\n")

        def walk(node: Tag, in_pre: bool, depth: int = 0) -> None:
            nonlocal section, item_open
            for child in node.children:
                if isinstance(child, NavigableString):
                    if not isinstance(child, skip_types):
                        # Preformatted text keeps its lines and indentation through the tidying below.
                        piece = normalise(str(child))
                        parts.append(piece.replace("\n", _PRE_NEWLINE) if in_pre else re.sub(r"\s+", " ", piece))
                        item_open = item_open and not piece.strip()
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
                if name == "br":
                    parts.append(_PRE_NEWLINE if in_pre else _SOFT_BREAK)
                    continue
                if name in ("ul", "ol"):
                    open_list(depth)
                    walk(child, in_pre, depth + 1)
                    add_break(_PARA_BREAK if depth == 0 else "\n")
                    continue
                if name == "li":
                    add_break("\n")
                    parts.append(_INDENT * max(0, depth - 1) + _marker(child) + " ")
                    item_open = True
                    walk(child, in_pre, depth)
                    item_open = False
                    parts.append("\n")
                    continue
                if name == "table":
                    table = _markdown_of(child)
                    if table:
                        tables.append(table)
                        parts.append(f"{_PARA_BREAK}\ue000{len(tables) - 1}\ue000{_PARA_BREAK}")
                    continue
                if name in _HTML_BLOCK:
                    brk = _PARA_BREAK if name in _HTML_PARAGRAPH and not depth else "\n"  # no blank line in a list
                    add_break(brk)
                    walk(child, in_pre or name == "pre", depth)
                    add_break(brk)
                elif name in _HTML_CELL:
                    parts.append(" | ")
                    walk(child, in_pre, depth)
                else:
                    walk(child, in_pre or name == "pre", depth)

        try:
            walk(root, False)
        except RecursionError as exc:
            raise LoadError("HTML too deeply nested") from exc
        flush()
        words = DocumentWords(line for raw, _ in sections for line in re.split(r"[\n\x1c\x1e]", raw))
        joiner = Joiner()
        for raw, section_path in sections:
            text = _tidy_extracted(raw, words)
            if tables:  # put the tables back where their placeholders stand (the tidying would mangle them)
                text = re.sub(r"\ue000(\d+)\ue000", lambda m: tables[int(m.group(1))], text)
            joiner.add(text, section=section_path)
        if not joiner.segments:
            raise LoadError("no text in HTML")
        return Document(doc_id=rel, title=title or default_title(rel), kind="html", segments=joiner.segments)


def _marker(item) -> str:
    """An `<li>`'s marker: "-" in a `<ul>`, its number (the list's `start`, the item's `value`) in an `<ol>`."""
    parent = item.parent
    if parent is None or parent.name != "ol":
        return "-"
    number = int(parent["start"]) if str(parent.get("start", "")).lstrip("-").isdigit() else 1
    for sibling in parent.find_all("li", recursive=False):
        if str(sibling.get("value", "")).isdigit():
            number = int(sibling["value"])
        if sibling is item:
            break
        number += 1
    return counter_text(number, _OL_TYPES.get(str(parent.get("type", "")), "decimal")) + "."


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
    for match in re.finditer(rf"<({'|'.join(names)})\b", lower):
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


def _tidy_extracted(text: str, words: DocumentWords) -> str:
    """Strip each line, drop leading cell separators and decide each `<br>` (two or more in a row: a paragraph).

    Line breaks stay single; paragraph breaks become one blank line.
    """
    text = re.sub(rf"{_SOFT_BREAK}(?:[ ]*{_SOFT_BREAK})+", _PARA_BREAK, text)
    lines = []
    for line in text.replace(_PARA_BREAK, "\n\x1e\n").split("\n"):
        line = line.strip(" \t")
        if line.startswith("|"):
            line = line.lstrip("| ").strip()
        if _SOFT_BREAK in line:
            indent = len(line) - len(line.lstrip(_INDENT))
            line = _INDENT * indent + join_soft_breaks(line[indent:].split(_SOFT_BREAK), words)
        if line:
            lines.append(line)
    text = "\n".join(lines)
    text = re.sub(r"\n?(?:\x1e\n?)+", "\n\n", text).strip()
    return re.sub(r"\n{3,}", "\n\n", text.replace(_PRE_NEWLINE, "\n").replace(_INDENT, "  ")).strip()


"""Loaders: one file on disk → one or more `Document`s whose `Segment`s carry the file's structure.

`load_file` dispatches on the suffix. Every failure a user can cause (empty, binary, undecodable, corrupt,
encrypted, unsupported) raises `LoadError` with a short reason; the caller adds the path and carries on.

Offsets. `start_char`/`end_char` index the document's *loaded text*: for text-like files (markdown, plain text,
code) that is the decoded source with newlines normalised to "\\n", so segments are exact slices of it and their
line numbers are source line numbers; for extracted formats (HTML, PDF, DOCX, notebooks, CSV) it is the extracted
segment texts joined by blank lines, and source line numbers are given only where they are meaningful.
"""

from __future__ import annotations

import ast
import bisect
import csv
import io
import json
import re
from pathlib import Path, PurePosixPath

from ingest.types import Document, LoadError, Segment

# ---------------------------------------------------------------------------------------------------------------
# Supported types

MARKDOWN_SUFFIXES = frozenset({".md", ".markdown", ".mdown", ".mkd"})
TEXT_SUFFIXES = frozenset({".txt", ".text", ".rst", ".tex", ".org", ".adoc", ".asciidoc"})
HTML_SUFFIXES = frozenset({".html", ".htm", ".xhtml"})

#: suffix → language name recorded in `Document.extra["language"]`
CODE_LANGUAGES: dict[str, str] = {
    ".py": "python", ".pyi": "python", ".js": "javascript", ".mjs": "javascript", ".cjs": "javascript",
    ".jsx": "javascript", ".ts": "typescript", ".tsx": "typescript", ".java": "java", ".go": "go", ".rs": "rust",
    ".c": "c", ".h": "c", ".cc": "cpp", ".cpp": "cpp", ".cxx": "cpp", ".hpp": "cpp", ".hh": "cpp", ".cs": "csharp",
    ".rb": "ruby", ".php": "php", ".sh": "shell", ".bash": "shell", ".zsh": "shell", ".scala": "scala",
    ".kt": "kotlin", ".kts": "kotlin", ".swift": "swift", ".sql": "sql", ".r": "r", ".jl": "julia", ".lua": "lua",
    ".m": "matlab", ".pl": "perl", ".pm": "perl", ".dart": "dart", ".hs": "haskell", ".ex": "elixir",
    ".exs": "elixir", ".erl": "erlang", ".clj": "clojure", ".fs": "fsharp", ".ml": "ocaml", ".vue": "vue",
    ".svelte": "svelte", ".ps1": "powershell", ".yaml": "yaml", ".yml": "yaml", ".toml": "toml",
}

SUPPORTED_SUFFIXES: frozenset[str] = frozenset(
    MARKDOWN_SUFFIXES | TEXT_SUFFIXES | HTML_SUFFIXES | set(CODE_LANGUAGES)
    | {".pdf", ".docx", ".ipynb", ".csv", ".tsv", ".jsonl"}
)


def is_supported(path: Path | str) -> bool:
    """Whether `load_file` knows this file's type (by suffix, case-insensitive)."""
    return Path(path).suffix.lower() in SUPPORTED_SUFFIXES


def load_file(path: Path, rel: str) -> list[Document]:
    """Load one file into Documents.

    Args:
        path: the file on disk.
        rel: its POSIX path relative to the ingested root; the document id (except for corpus.jsonl records,
            whose `_id` is kept) and the source of the default title.

    Returns:
        One Document, or one per record for a BEIR-style `.jsonl` corpus.

    Raises:
        LoadError: with a short reason (the caller adds the path).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise LoadError(f"unsupported file type '{suffix}'" if suffix else "unsupported file type (no extension)")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise LoadError(f"cannot read file ({exc.strerror or exc})") from exc
    if not data:
        raise LoadError("empty file")

    if suffix == ".pdf":
        return [_load_pdf(data, rel)]
    if suffix == ".docx":
        return [_load_docx(data, rel)]
    if suffix == ".jsonl":
        return _load_jsonl(decode_text(data), rel)

    text = decode_text(data)
    if not text.strip():
        raise LoadError("no text (whitespace only)")
    if suffix in MARKDOWN_SUFFIXES:
        return [_load_markdown(text, rel)]
    if suffix in HTML_SUFFIXES:
        return [_load_html(text, rel)]
    if suffix == ".ipynb":
        return [_load_notebook(text, rel)]
    if suffix in (".csv", ".tsv"):
        return [_load_csv(text, rel, tsv=suffix == ".tsv")]
    if suffix in CODE_LANGUAGES:
        return [_load_code(text, rel, CODE_LANGUAGES[suffix])]
    return [_load_plain(text, rel)]


# ---------------------------------------------------------------------------------------------------------------
# Decoding

_BINARY_SNIFF = 8192
_ALLOWED_CONTROLS = frozenset("\t\n\r\f\v")


def decode_text(data: bytes) -> str:
    """Decode a text file: UTF-8 (BOM optional), UTF-16 with BOM, else clean cp1252/latin-1; newlines → "\\n".

    Raises:
        LoadError: "binary file (NUL bytes)" or "not valid UTF-8 text".
    """
    if data.startswith(b"\xef\xbb\xbf"):
        text = _strict(data[3:], "utf-8")
    elif data.startswith((b"\xff\xfe", b"\xfe\xff")):
        text = _strict(data, "utf-16")
    else:
        if b"\x00" in data[:_BINARY_SNIFF]:
            raise LoadError("binary file (NUL bytes)")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = _legacy_decode(data)
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


def _strict(data: bytes, encoding: str) -> str:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise LoadError(f"not valid {encoding.upper()} text") from exc


def _legacy_decode(data: bytes) -> str:
    """Windows-1252 or Latin-1, but only when the result reads as text (not random bytes)."""
    for encoding in ("cp1252", "latin-1"):
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        if _looks_like_text(text):
            return text
    raise LoadError("not valid UTF-8 text")


def _looks_like_text(text: str) -> bool:
    non_ascii = 0
    for ch in text:
        if ch < " " or "\x7f" <= ch < "\xa0":
            if ch not in _ALLOWED_CONTROLS:
                return False
        elif ch > "\x7f":
            non_ascii += 1
    # Legacy-encoded prose is mostly ASCII with the odd accent; a high share of high bytes is binary or another
    # encoding that would only decode to mojibake.
    return non_ascii <= 0.3 * max(1, len(text))


# ---------------------------------------------------------------------------------------------------------------
# Shared helpers


def default_title(rel: str) -> str:
    """The file name without its suffix (e.g. 'notes/intro.md' → 'intro')."""
    name = PurePosixPath(rel).name
    return PurePosixPath(name).stem or name


class _Lines:
    """Maps character offsets of a text to 1-based line numbers."""

    def __init__(self, text: str):
        self.starts = [0]
        find = text.find
        pos = find("\n")
        while pos != -1:
            self.starts.append(pos + 1)
            pos = find("\n", pos + 1)

    def line_of(self, offset: int) -> int:
        return bisect.bisect_right(self.starts, offset)


def _slice_segment(text: str, lines: _Lines | None, start: int, end: int, **meta) -> Segment | None:
    """A Segment for text[start:end] with surrounding whitespace trimmed, or None if it is blank."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if start >= end:
        return None
    seg = Segment(text=text[start:end], start_char=start, end_char=end, **meta)
    if lines is not None:
        seg.start_line = lines.line_of(start)
        seg.end_line = lines.line_of(end - 1)
    return seg


class _Joiner:
    """Builds an extracted document text from pieces, recording each piece's offsets (pieces split by blank lines)."""

    def __init__(self):
        self.length = 0
        self.segments: list[Segment] = []

    def add(self, text: str, **meta) -> None:
        text = text.strip()
        if not text:
            return
        if self.segments:
            self.length += 2  # the "\n\n" separating pieces
        self.segments.append(Segment(text=text, start_char=self.length, end_char=self.length + len(text), **meta))
        self.length += len(text)


def _path_of(stack: list[tuple[int, str]]) -> str:
    return " > ".join(title for _, title in stack)


def _push_heading(stack: list[tuple[int, str]], level: int, title: str) -> None:
    while stack and stack[-1][0] >= level:
        stack.pop()
    stack.append((level, title))


def _clean_inline(text: str) -> str:
    """Heading text without markdown emphasis/code marks and with collapsed spaces."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)  # links and images → their text
    text = re.sub(r"[`*_]{1,3}([^`*_]+)[`*_]{1,3}", r"\1", text)
    return " ".join(text.split())


# ---------------------------------------------------------------------------------------------------------------
# Markdown

_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_SETEXT_UNDERLINE = re.compile(r"^ {0,3}(={2,}|-{2,})[ \t]*$")
_NOT_SETEXT_TEXT = re.compile(r"^( {4}|\t|\s*([-*+>|]|\d+[.)])(\s|$)|\s*<)")  # code, list, quote, table, html
_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?\n)(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.S)


def _load_markdown(text: str, rel: str) -> Document:
    lines = _Lines(text)
    title = ""
    body_start = 0
    front = _FRONT_MATTER.match(text)
    if front:
        body_start = front.end()
        match = re.search(r"^title:[ \t]*(.+?)[ \t]*$", front.group(1), re.M)
        if match:
            title = match.group(1).strip("'\"")

    segments: list[Segment] = []
    stack: list[tuple[int, str]] = []
    section = ""
    seg_start = body_start
    fence: str | None = None
    offset = body_start
    # The previous line, when it could be the text of a setext heading (a lone paragraph line).
    candidate: tuple[int, str] | None = None  # (offset, line)
    previous_blank = True
    for line in text[body_start:].split("\n"):
        line_end = offset + len(line) + 1
        fence_match = _FENCE.match(line)
        heading_at, level, heading_text = -1, 0, ""
        if fence is not None:
            if fence_match and fence_match.group(1)[0] == fence[0] and len(fence_match.group(1)) >= len(fence):
                fence = None
        elif fence_match:
            fence = fence_match.group(1)
        elif (atx := _ATX.match(line)) is not None:
            heading_at, level, heading_text = offset, len(atx.group(1)), _clean_inline(atx.group(2) or "")
        elif candidate is not None and (underline := _SETEXT_UNDERLINE.match(line)) is not None:
            heading_at, level, heading_text = candidate[0], 1 if underline.group(1)[0] == "=" else 2, candidate[1]
        if heading_at >= 0:
            seg = _slice_segment(text, lines, seg_start, heading_at, section=section)
            if seg:
                segments.append(seg)
            if heading_text:
                if level == 1 and not title:
                    title = heading_text
                _push_heading(stack, level, heading_text)
                section = _path_of(stack)
            seg_start = min(line_end, len(text))
        blank = not line.strip()
        candidate = None
        if fence is None and not fence_match and heading_at < 0 and not blank and previous_blank:
            if not _NOT_SETEXT_TEXT.match(line):
                candidate = (offset, _clean_inline(line))
        previous_blank = blank or heading_at >= 0
        offset = line_end
    seg = _slice_segment(text, lines, seg_start, len(text), section=section)
    if seg:
        segments.append(seg)
    return Document(doc_id=rel, title=title or default_title(rel), kind="markdown", segments=segments)


# ---------------------------------------------------------------------------------------------------------------
# Plain text


def _load_plain(text: str, rel: str) -> Document:
    lines = _Lines(text)
    seg = _slice_segment(text, lines, 0, len(text))
    segments = [seg] if seg else []
    return Document(doc_id=rel, title=_plain_title(text) or default_title(rel), kind="text", segments=segments)


def _plain_title(text: str) -> str:
    """A short first line that stands alone (followed by a blank or an underline) reads as the title."""
    head = text.lstrip("\n").split("\n", 3)
    first = head[0].strip()
    if len(head) < 2 or not first or len(first) > 80 or first[-1] in ".,;:!?":
        return ""
    second = head[1].strip()
    if second and not re.fullmatch(r"([=\-~^*#+])\1{2,}", second):
        return ""
    return first.strip("=#*-~ ").strip() or ""


# ---------------------------------------------------------------------------------------------------------------
# HTML

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


def _load_html(text: str, rel: str) -> Document:
    from bs4 import BeautifulSoup, Comment, NavigableString, Tag
    from bs4.element import Declaration, Doctype, ProcessingInstruction

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

    joiner = _Joiner()
    stack: list[tuple[int, str]] = []
    section = ""
    parts: list[str] = []
    skip_types = (Comment, Doctype, Declaration, ProcessingInstruction)

    def flush() -> None:
        joiner.add(_tidy_extracted("".join(parts)), section=section)
        parts.clear()

    def walk(node: Tag, in_pre: bool) -> None:
        nonlocal section
        for child in node.children:
            if isinstance(child, NavigableString):
                if not isinstance(child, skip_types):
                    # Preformatted text keeps its lines and indentation through the tidying below.
                    parts.append(str(child).replace("\n", _PRE_NEWLINE) if in_pre else re.sub(r"\s+", " ", str(child)))
                continue
            if not isinstance(child, Tag):
                continue
            name = child.name.lower() if child.name else ""
            if name in _HTML_SECTION:
                flush()
                heading = " ".join(child.get_text(" ").split())
                if heading:
                    _push_heading(stack, _HTML_SECTION[name], heading)
                    section = _path_of(stack)
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
        walk(soup, False)
    except RecursionError as exc:
        raise LoadError("HTML too deeply nested") from exc
    flush()
    if not joiner.segments:
        raise LoadError("no text in HTML")
    return Document(doc_id=rel, title=title or default_title(rel), kind="html", segments=joiner.segments)


def _tidy_extracted(text: str) -> str:
    """Strip each line, drop leading cell separators; line breaks stay single, paragraph breaks become one blank line."""
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


# ---------------------------------------------------------------------------------------------------------------
# PDF


def _load_pdf(data: bytes, rel: str) -> Document:
    import logging

    from pypdf import PdfReader

    # pypdf logs every repairable oddity of a file; the reason a file fails is reported through LoadError instead.
    logging.getLogger("pypdf").setLevel(logging.ERROR)

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            try:
                opened = reader.decrypt("")
            except Exception as exc:  # noqa: BLE001 - e.g. AES without a crypto library
                raise LoadError(f"encrypted PDF (cannot decrypt: {exc})") from exc
            if not opened:
                raise LoadError("encrypted PDF (password required)")
        pages = reader.pages
        n_pages = len(pages)
    except LoadError:
        raise
    except Exception as exc:  # noqa: BLE001 - pypdf raises many types (PdfReadError, ValueError...) on broken files
        raise LoadError(f"corrupt PDF: {_short(exc)}") from exc

    joiner = _Joiner()
    failures = 0
    last_error: Exception | None = None
    for number in range(n_pages):
        try:
            page_text = pages[number].extract_text() or ""
        except Exception as exc:  # noqa: BLE001 - one unreadable page does not sink the file
            failures += 1
            last_error = exc
            continue
        joiner.add(_tidy_pdf_text(page_text), page=number + 1)
    if not joiner.segments:
        if failures and last_error is not None:
            raise LoadError(f"corrupt PDF: {_short(last_error)}")
        raise LoadError("PDF has no text layer (scanned?)")
    return Document(doc_id=rel, title=_pdf_title(reader) or default_title(rel), kind="pdf",
                    segments=joiner.segments, extra={"pages": n_pages})


def _pdf_title(reader) -> str:
    try:
        meta = reader.metadata
        title = str(meta.title or "") if meta else ""
    except Exception:  # noqa: BLE001 - broken metadata is not worth failing over
        return ""
    title = re.sub(r"^Microsoft (Word|PowerPoint) - ", "", " ".join(title.split()))
    return "" if title.lower() in ("untitled", "title") else title


def _tidy_pdf_text(text: str) -> str:
    text = text.replace("\x00", "")
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _short(exc: Exception) -> str:
    message = " ".join(str(exc).split()) or type(exc).__name__
    return message[:160]


# ---------------------------------------------------------------------------------------------------------------
# DOCX


def _load_docx(data: bytes, rel: str) -> Document:
    import zipfile

    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise LoadError("corrupt DOCX (not a zip archive)")
    try:
        import docx
        from docx.table import Table
        from docx.text.paragraph import Paragraph

        document = docx.Document(io.BytesIO(data))
    except Exception as exc:  # noqa: BLE001 - python-docx raises KeyError/ValueError/... on broken packages
        raise LoadError(f"corrupt DOCX: {_short(exc)}") from exc

    title = (document.core_properties.title or "").strip()
    joiner = _Joiner()
    stack: list[tuple[int, str]] = []
    section = ""
    parts: list[str] = []

    def flush() -> None:
        joiner.add("\n".join(parts), section=section)
        parts.clear()

    for element in document.element.body.iterchildren():
        tag = element.tag.rsplit("}", 1)[-1]
        if tag == "p":
            paragraph = Paragraph(element, document)
            text = paragraph.text.strip()
            if not text:
                continue
            style = (paragraph.style.name if paragraph.style is not None else "") or ""
            level = _docx_heading_level(style)
            if style == "Title":
                title = title or text
                continue
            if level:
                flush()
                _push_heading(stack, level, " ".join(text.split()))
                section = _path_of(stack)
                if level == 1 and not title:
                    title = text
                continue
            parts.append(text)
        elif tag == "tbl":
            rows = []
            for row in Table(element, document).rows:
                cells: list[str] = []
                for cell in row.cells:
                    cell_text = " ".join(cell.text.split())
                    if cell_text and (not cells or cells[-1] != cell_text):  # merged cells repeat
                        cells.append(cell_text)
                if cells:
                    rows.append(" | ".join(cells))
            if rows:
                parts.append("\n".join(rows))
    flush()
    if not joiner.segments:
        raise LoadError("no text in DOCX")
    return Document(doc_id=rel, title=title or default_title(rel), kind="docx", segments=joiner.segments)


def _docx_heading_level(style: str) -> int:
    match = re.fullmatch(r"Heading (\d)", style)
    return int(match.group(1)) if match else 0


# ---------------------------------------------------------------------------------------------------------------
# Source code


def _load_code(text: str, rel: str, language: str) -> Document:
    lines = _Lines(text)
    spans: list[tuple[int, int, str]] | None = None  # (first line, last line, section), 1-based inclusive
    if language == "python":
        spans = _python_spans(text)
    if spans is None and language in _UNSPLIT_LANGUAGES:
        spans = [(1, len(lines.starts), "")]
    if spans is None:
        spans = _regex_spans(text.split("\n"), language)
    segments: list[Segment] = []
    for first, last, section in spans:
        start = lines.starts[first - 1]
        end = lines.starts[last] if last < len(lines.starts) else len(text)
        seg = _slice_segment(text, lines, start, end, section=section)
        if seg:
            segments.append(seg)
    return Document(doc_id=rel, title=PurePosixPath(rel).name, kind="code", segments=segments,
                    extra={"language": language})


_UNSPLIT_LANGUAGES = frozenset({"yaml", "toml"})  # configuration: no definitions to split at


def _fill_gaps(defs: list[tuple[int, int, str]], n_lines: int) -> list[tuple[int, int, str]]:
    """Definitions plus the code between them (imports, constants, main blocks) as unnamed spans."""
    spans = []
    cursor = 1
    for first, last, section in sorted(defs):
        if first > cursor:
            spans.append((cursor, first - 1, ""))
        spans.append((first, last, section))
        cursor = last + 1
    if cursor <= n_lines:
        spans.append((cursor, n_lines, ""))
    return spans


def _python_spans(text: str) -> list[tuple[int, int, str]] | None:
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return None
    src_lines = text.split("\n")
    defs = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            kind = "class" if isinstance(node, ast.ClassDef) else "def"
            first = min([node.lineno] + [d.lineno for d in node.decorator_list])
            while first > 1 and src_lines[first - 2].lstrip().startswith("#"):  # comments above belong to it
                first -= 1
            defs.append((first, node.end_lineno or node.lineno, f"{kind} {node.name}"))
    return _fill_gaps(_no_overlap(defs), len(src_lines))


def _no_overlap(defs: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    out: list[tuple[int, int, str]] = []
    for first, last, section in sorted(defs):
        if out and first <= out[-1][1]:
            first = out[-1][1] + 1
        if first <= last:
            out.append((first, last, section))
    return out


_DEF_KEYWORD = re.compile(
    r"^(?:(?:export|default|pub(?:\([^)]*\))?|public|private|protected|internal|static|final|abstract|async|"
    r"unsafe|extern|inline|virtual|override|open|sealed|data|case|local|partial|readonly|const|module)\s+)*"
    r"(function\*?|def|class|fn|func|struct|enum|trait|impl|interface|type|object|record|proc|sub|macro_rules!|"
    r"procedure|create\s+(?:or\s+replace\s+)?(?:table|view|function|procedure|index))\s*"
    r"(\([^)]*\)\s*)?([A-Za-z_$][\w$.:<>]*)?",
    re.I,
)
_C_FUNCTION = re.compile(r"^[A-Za-z_][\w\s\*&:<>,\[\]]*?\b([A-Za-z_~][\w:~]*)\s*\([^;]*$")
_COMMENT_LINE = re.compile(r"^\s*(//|/\*|\*|#|--|;|%|@|\[)")


def _regex_spans(src_lines: list[str], language: str) -> list[tuple[int, int, str]]:
    """Split at unindented definition lines; comments/decorators directly above a definition join it."""
    starts: list[tuple[int, str]] = []
    for number, line in enumerate(src_lines, 1):
        if not line or line[0].isspace() or line[0] in "}{)]#/*@-;%<":
            continue
        section = ""
        match = _DEF_KEYWORD.match(line)
        if match:
            keyword = " ".join(match.group(1).lower().split())
            name = match.group(3) or ""
            section = f"{keyword} {name}".strip()
        elif language in ("c", "cpp", "java", "csharp", "go", "rust", "swift", "kotlin", "scala", "dart", "php"):
            c_match = _C_FUNCTION.match(line)
            if c_match and not line.rstrip().endswith(";") and c_match.group(1) not in ("if", "for", "while",
                                                                                        "switch", "return"):
                section = f"{c_match.group(1)}()"
        if section:
            first = number
            while first > 1 and src_lines[first - 2].strip() and _COMMENT_LINE.match(src_lines[first - 2]):
                first -= 1
            starts.append((first, section))
    if not starts:
        return [(1, len(src_lines), "")]
    spans = []
    for index, (first, section) in enumerate(starts):
        last = starts[index + 1][0] - 1 if index + 1 < len(starts) else len(src_lines)
        if first <= last:
            spans.append((first, last, section))
    return _fill_gaps(_no_overlap(spans), len(src_lines))


# ---------------------------------------------------------------------------------------------------------------
# Jupyter notebooks


def _load_notebook(text: str, rel: str) -> Document:
    try:
        notebook = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LoadError(f"invalid notebook JSON (line {exc.lineno}: {exc.msg})") from exc
    if not isinstance(notebook, dict):
        raise LoadError("invalid notebook (not a JSON object)")
    cells = notebook.get("cells")
    if cells is None and isinstance(notebook.get("worksheets"), list):  # nbformat 3
        cells = [c for sheet in notebook["worksheets"] for c in sheet.get("cells", [])]
    if not isinstance(cells, list):
        raise LoadError("invalid notebook (no cells)")
    metadata = notebook.get("metadata") or {}
    language = (
        (metadata.get("kernelspec") or {}).get("language")
        or (metadata.get("language_info") or {}).get("name")
        or "python"
    )
    title = str(metadata.get("title") or "")
    joiner = _Joiner()
    stack: list[tuple[int, str]] = []
    section = ""
    for cell in cells:
        if not isinstance(cell, dict):
            continue
        source = cell.get("source", cell.get("input", ""))
        source = "".join(source) if isinstance(source, list) else str(source or "")
        source = source.replace("\r\n", "\n")
        kind = cell.get("cell_type")
        if kind == "markdown":
            fence = None
            for line in source.split("\n"):
                if _FENCE.match(line):
                    fence = None if fence else line
                    continue
                heading = None if fence else _ATX.match(line)
                if heading and heading.group(2):
                    level, heading_text = len(heading.group(1)), _clean_inline(heading.group(2))
                    if level == 1 and not title:
                        title = heading_text
                    _push_heading(stack, level, heading_text)
                    section = _path_of(stack)
        elif kind not in ("code", "raw"):
            continue
        joiner.add(source, section=section)
    if not joiner.segments:
        raise LoadError("notebook has no text cells")
    return Document(doc_id=rel, title=title or default_title(rel), kind="notebook", segments=joiner.segments,
                    extra={"language": str(language).lower()})


# ---------------------------------------------------------------------------------------------------------------
# CSV / TSV

CSV_ROWS_PER_SEGMENT = 20


def _load_csv(text: str, rel: str, tsv: bool) -> Document:
    if tsv:
        dialect: type[csv.Dialect] | csv.Dialect = csv.excel_tab
    else:
        try:
            dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t|")
        except csv.Error:
            dialect = csv.excel
    reader = csv.reader(io.StringIO(text), dialect)
    try:
        header = next(reader, None)
        while header is not None and not any(cell.strip() for cell in header):
            header = next(reader, None)
        if header is None:
            raise LoadError("no text (empty CSV)")
        columns = [" ".join(h.split()) or f"column {i + 1}" for i, h in enumerate(header)]
        header_line = reader.line_num
        joiner = _Joiner()
        rows: list[str] = []
        first_line = header_line + 1
        for row in reader:
            line = reader.line_num
            cells = []
            for index, value in enumerate(row):
                value = " ".join(value.split())
                if value:
                    name = columns[index] if index < len(columns) else f"column {index + 1}"
                    cells.append(f"{name}: {value}")
            if cells:
                if not rows:
                    first_line = line - row_lines(row) + 1
                rows.append("; ".join(cells))
            if len(rows) == CSV_ROWS_PER_SEGMENT:
                joiner.add("\n".join(rows), start_line=first_line, end_line=line)
                rows = []
        if rows:
            joiner.add("\n".join(rows), start_line=first_line, end_line=reader.line_num)
    except csv.Error as exc:
        raise LoadError(f"malformed CSV (line {reader.line_num}: {exc})") from exc
    if not joiner.segments:  # a header and no rows: keep the header so the file is findable
        joiner.add("columns: " + ", ".join(columns), start_line=header_line, end_line=header_line)
    return Document(doc_id=rel, title=default_title(rel), kind="csv", segments=joiner.segments,
                    extra={"columns": columns})


def row_lines(row: list[str]) -> int:
    """Source lines a parsed CSV record spans (quoted cells may hold newlines)."""
    return 1 + sum(value.count("\n") for value in row)


# ---------------------------------------------------------------------------------------------------------------
# BEIR corpus.jsonl


def _load_jsonl(text: str, rel: str) -> list[Document]:
    docs = []
    loads = json.loads
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            record = loads(line)
        except json.JSONDecodeError as exc:
            raise LoadError(f"invalid JSON on line {number}: {exc.msg}") from exc
        if not isinstance(record, dict) or "_id" not in record or "text" not in record:
            raise LoadError(f"line {number} has no '_id' and 'text' (expected a BEIR-style corpus.jsonl)")
        title = str(record.get("title") or "")
        body = str(record["text"] or "")
        if not body.strip():
            body = title
        segment = Segment(text=body, start_line=number, end_line=number, start_char=0, end_char=len(body))
        docs.append(Document(doc_id=str(record["_id"]), title=title, kind="jsonl", segments=[segment]))
    if not docs:
        raise LoadError("no text (no records)")
    return docs


__all__ = [
    "SUPPORTED_SUFFIXES",
    "CODE_LANGUAGES",
    "decode_text",
    "default_title",
    "is_supported",
    "load_file",
]

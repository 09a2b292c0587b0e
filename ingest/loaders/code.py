"""Source code: one segment per top-level definition (Python by its syntax tree, other languages by a light
regex), with the code between definitions (imports, constants, main blocks) as unnamed segments."""

from __future__ import annotations

import ast
import re
from pathlib import PurePosixPath

from ingest.loaders.base import TextLoader
from ingest.loaders.segments import LineIndex, slice_segment
from ingest.types import Document, Segment

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


class CodeLoader(TextLoader):
    """The title is the file name; segments are named like "def train", "class Box" or "main()"."""

    suffixes = frozenset(CODE_LANGUAGES)

    def load_text(self, text: str, rel: str, suffix: str) -> Document:
        language = CODE_LANGUAGES[suffix]
        lines = LineIndex(text)
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
            seg = slice_segment(text, lines, start, end, section=section)
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


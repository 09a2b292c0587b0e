"""Jupyter notebooks: one segment per markdown, code or raw cell (outputs are left out), sections from the
markdown cells' headings."""

from __future__ import annotations

import json

from ingest.loaders.base import TextLoader, default_title
from ingest.loaders.markdown import ATX_HEADING, FENCE, clean_inline
from ingest.loaders.segments import Joiner, heading_path, push_heading
from ingest.types import Document, LoadError


class NotebookLoader(TextLoader):
    """nbformat 3 and 4; the language from the kernel spec, else the language info, else Python."""

    suffixes = frozenset({".ipynb"})

    def load_text(self, text: str, rel: str, suffix: str) -> Document:
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
        joiner = Joiner()
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
                    if FENCE.match(line):
                        fence = None if fence else line
                        continue
                    heading = None if fence else ATX_HEADING.match(line)
                    if heading and heading.group(2):
                        level, heading_text = len(heading.group(1)), clean_inline(heading.group(2))
                        if level == 1 and not title:
                            title = heading_text
                        push_heading(stack, level, heading_text)
                        section = heading_path(stack)
            elif kind not in ("code", "raw"):
                continue
            joiner.add(source, section=section)
        if not joiner.segments:
            raise LoadError("notebook has no text cells")
        return Document(doc_id=rel, title=title or default_title(rel), kind="notebook", segments=joiner.segments,
                        extra={"language": str(language).lower()})

"""Characters a person reads the same, stored the same: NFKC (ligatures "ﬁ" → "fi", full-width and compatibility
forms), with control and private-use characters (symbol-font glyphs mapped nowhere) dropped. Shared by the PDF,
DOCX, PPTX and HTML loaders."""

from __future__ import annotations

import re
import unicodedata

# Keeps tab, newline and U+001D (`vocabulary.LINE_END_HYPHEN`, set by the PDF reader before this runs).
_DROPPED = re.compile(r"[\x00-\x08\x0b-\x1c\x1e\x1f\x7f\ue000-\uf8ff\ufffd\ufffe\uffff]")


def normalise(text: str) -> str:
    """`text` in NFKC without control and private-use characters."""
    return _DROPPED.sub("", unicodedata.normalize("NFKC", text))

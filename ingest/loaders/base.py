"""The loader interface: one format family, its suffixes, and how a file's bytes become `Document`s."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import PurePosixPath

from ingest.loaders.decoding import decode_text
from ingest.types import Document, LoadError


class Loader(ABC):
    """One format family (e.g. markdown, or all source code). Stateless: one instance serves every file."""

    #: Lower-case suffixes with the dot, e.g. frozenset({".md", ".markdown"}); each belongs to one loader only.
    suffixes: frozenset[str]

    @abstractmethod
    def load(self, data: bytes, rel: str, suffix: str) -> list[Document]:
        """Documents from a file's bytes.

        Args:
            data: the file's contents, never empty.
            rel: the file's POSIX path relative to the ingested root (the default document id and title).
            suffix: the file's lower-case suffix, one of `suffixes`.

        Raises:
            LoadError: with a short reason (the caller adds the path).
        """


class TextLoader(Loader):
    """A text format: the bytes are decoded (`decode_text`) and whitespace-only files refused before `load_text`."""

    def load(self, data: bytes, rel: str, suffix: str) -> list[Document]:
        text = decode_text(data)
        if not text.strip():
            raise LoadError("no text (whitespace only)")
        return [self.load_text(text, rel, suffix)]

    @abstractmethod
    def load_text(self, text: str, rel: str, suffix: str) -> Document:
        """One Document from the decoded text (newlines already normalised to "\\n")."""


def default_title(rel: str) -> str:
    """The file name without its suffix (e.g. 'notes/intro.md' → 'intro')."""
    name = PurePosixPath(rel).name
    return PurePosixPath(name).stem or name


def short_reason(exc: Exception) -> str:
    """An exception's message on one line, short enough for a LoadError reason."""
    message = " ".join(str(exc).split()) or type(exc).__name__
    return message[:160]


def not_zip_reason(data: bytes, kind: str) -> str:
    """Why an Office file that should be a zip archive is not (see `ingest.loaders.archives.not_zip_reason`)."""
    from ingest.loaders.archives import not_zip_reason as reason

    return reason(data, kind)

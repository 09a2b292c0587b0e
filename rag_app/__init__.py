"""Local, private question answering over documents. `import rag_app` stays cheap: nothing heavy is imported here."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rag_app.errors import RagError
from rag_app.settings import Settings

if TYPE_CHECKING:
    from rag_app.api import RAG

__all__ = ["RAG", "RagError", "Settings"]
__version__ = "0.1.0"


def __getattr__(name: str):
    if name == "RAG":
        from rag_app.api import RAG

        return RAG
    raise AttributeError(name)

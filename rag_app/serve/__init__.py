"""`rag serve`: an OpenAI-compatible HTTP face over the `RAG` class (FastAPI on uvicorn).

    from rag_app.serve import create_app
    app = create_app(RAG(settings))      # a ready FastAPI app; `rag serve` runs it with uvicorn

Thin, like the CLI and the UI: one small router per resource (`routers/`) parses an OpenAI-shaped request, calls
`RAG`, and maps the result back; `errors.py` turns every `RagError` into `{"error": {message, type, param}}` with a
status code. FastAPI is imported only when this package is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rag_app.serve.app import create_app


def __getattr__(name: str):
    if name == "create_app":
        from rag_app.serve.app import create_app

        return create_app
    raise AttributeError(name)

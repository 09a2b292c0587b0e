"""The app factory: `create_app(rag)` → a FastAPI app serving the OpenAI-compatible API over that `RAG`, and the
same documents as MCP tools over streamable HTTP at `/mcp` (rag_app/mcp/), behind the same key and limits."""

from __future__ import annotations

import sys
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import Depends, FastAPI, Request

from rag_app.serve.security import ApiKeyGate, BodyLimit
from rag_app.serve.state import ServeState

UPLOAD_PATHS = ("/v1/ingest",)
#: The paths the API key guards: the OpenAI-compatible API and the MCP endpoint.
KEYED_PREFIXES = ("/v1", "/mcp")


def create_app(rag, settings=None, *, ensure_corpus: bool = False, load: bool = True):
    """Build the HTTP app.

    Args:
        rag: a ready `RAG` (its components load on a background thread when the server starts).
        settings: settings to read the `serve` section from (default: `rag.settings`).
        ensure_corpus: at start-up, ingest the bundled corpus into the default collection if it is empty.
        load: start loading the models when the server starts (off: tests of the loading state).

    Returns:
        A `fastapi.FastAPI`; `app.state.serve` is its `ServeState`.
    """
    from rag_app.serve.errors import install as install_error_handlers
    from rag_app.serve.routers import chat, collections, embeddings, health, ingest, retrieve

    settings = settings or rag.settings
    state = ServeState(rag, settings, ensure_corpus=ensure_corpus)
    mcp = mcp_server(state)

    @asynccontextmanager
    async def lifespan(app):
        async with AsyncExitStack() as stack:
            if mcp is not None:
                await stack.enter_async_context(mcp.session_manager.run())
            if load:
                state.start_loading()
            yield
            state.close()

    app = FastAPI(title="rag serve", summary="OpenAI-compatible API over your documents", lifespan=lifespan,
                  docs_url=None, redoc_url=None)  # the docs pages load scripts from a CDN: not for an offline app
    app.state.serve = state
    install_error_handlers(app)

    def ready(request: Request) -> None:
        request.app.state.serve.require_ready()

    for module in (chat, embeddings, retrieve, ingest, collections):
        app.include_router(module.router, prefix="/v1", dependencies=[Depends(ready)])
    app.include_router(health.router)
    if mcp is not None:
        from rag_app.mcp.server import http_routes

        app.router.routes.extend(http_routes(mcp, settings))  # stateless; loopback names only on loopback
    # Outermost first: the key is checked before the body is read, then the body is held to its limit.
    app.add_middleware(BodyLimit, max_json_bytes=settings.serve.max_body_kb * 1000,
                       max_upload_bytes=int(settings.serve.max_upload_mb * 1_000_000), upload_paths=UPLOAD_PATHS)
    app.add_middleware(ApiKeyGate, api_key=settings.serve.api_key, prefixes=KEYED_PREFIXES)
    return app


def mcp_server(state):
    """The MCP server over the app's state, or None (with a note) when the `mcp` SDK is not installed."""
    try:
        from rag_app.mcp.server import create_server
    except ImportError as exc:
        print(f"rag serve: /mcp is off: the MCP SDK is missing ({exc.name}): pip install 'mcp>=2.3,<3'",
              file=sys.stderr, flush=True)
        return None
    return create_server(state)

"""`rag serve`: the OpenAI-compatible HTTP API (rag_app/serve/) on uvicorn."""

from __future__ import annotations

import argparse
import sys

from rag_app.cli import add_store_options, settings_from_args


def register(subparsers) -> None:
    serve = subparsers.add_parser(
        "serve", help="serve an OpenAI-compatible HTTP API (chat, embeddings, retrieve, ingest)",
        description="Serve /v1/chat/completions, /v1/embeddings, /v1/retrieve, /v1/ingest and more over HTTP. "
                    "Loopback by default; another --host needs RAG_SERVE__API_KEY.")
    serve.add_argument("--host", help="address to listen on (default: RAG_SERVE__HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default: RAG_SERVE__PORT or 8800)")
    serve.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], help="where the models run")
    add_store_options(serve)
    serve.set_defaults(func=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    from rag_app.api import RAG
    from rag_app.serve.security import check_bind

    settings = settings_from_args(args).with_overrides(**{"serve.host": args.host, "serve.port": args.port})
    cfg = settings.serve
    check_bind(cfg.host, cfg.api_key)
    try:
        import uvicorn

        from rag_app.serve import create_app
    except ImportError as exc:
        from rag_app.errors import RagError

        raise RagError(f"`rag serve` needs FastAPI and uvicorn ({exc.name} is missing): "
                       "pip install 'fastapi>=0.110' 'uvicorn>=0.29' python-multipart") from None
    rag = RAG(settings)
    # As `rag ask`: the default collection, when empty, gets the bundled corpus (not a collection named on purpose).
    app = create_app(rag, ensure_corpus=cfg.bundled_corpus and not args.collection)
    shown = f"[{cfg.host}]" if ":" in cfg.host else cfg.host
    print(f"rag serve: http://{shown}:{cfg.port}/v1 (collection {settings.store.collection!r}"
          f"{', API key required' if cfg.api_key else ''}); loading the models, GET /ready says when done",
          file=sys.stderr, flush=True)
    uvicorn.run(app, host=cfg.host, port=cfg.port, log_level="warning", access_log=False,
                timeout_graceful_shutdown=5)
    return 0

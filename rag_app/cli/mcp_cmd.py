"""`rag mcp`: your documents as MCP tools over stdio, for the desktop apps and editors that spawn it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rag_app.cli import add_store_options, settings_from_args

DESCRIPTION = """\
Serve your documents to an MCP client (a desktop chat app, an editor, an agent) over stdio: the client spawns this
command and talks JSON-RPC on its stdin and stdout. Tools:

  search_documents(query, k?, collection?)   ranked passages: text, source, section, page/slide/sheet, score
  ask(question, collection?, history?)       the grounded answer, `refused`, and the numbered sources it cites
  list_collections()                         collections with their chunk counts
  list_documents(collection?)                the files of a collection

With --allow-writes (RAG_MCP__ALLOW_WRITES=true) also ingest_files(paths, collection?), confined to the --write-root
folders (RAG_MCP__WRITE_ROOTS), and delete_document(source, collection?); off by default. Data lives under
RAG_HOME. `rag serve` offers the same tools over streamable HTTP at /mcp."""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "mcp", help="serve your documents as MCP tools over stdio (for desktop apps and editors)",
        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--allow-writes", action="store_true", default=None,
                        help="offer ingest_files and delete_document (default: RAG_MCP__ALLOW_WRITES or off)")
    parser.add_argument("--write-root", action="append", metavar="DIR",
                        help="a folder ingest_files may read, with everything under it; repeat for more "
                             "(default: RAG_MCP__WRITE_ROOTS)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], help="where the models run")
    add_store_options(parser)
    parser.set_defaults(func=run_mcp)


def run_mcp(args: argparse.Namespace) -> int:
    from rag_app.api import RAG
    from rag_app.serve.state import ServeState

    roots = [str(Path(root).expanduser().resolve()) for root in args.write_root] if args.write_root else None
    settings = settings_from_args(args).with_overrides(**{"mcp.allow_writes": args.allow_writes,
                                                          "mcp.write_roots": roots})
    try:
        from rag_app.mcp.server import create_server
    except ImportError as exc:
        from rag_app.errors import RagError

        raise RagError(f"`rag mcp` needs the MCP SDK ({exc.name} is missing): pip install 'mcp>=2.3,<3'") from None
    rag = RAG(settings)
    # As `rag serve`: the default collection, when empty, gets the bundled corpus (not a collection named on purpose).
    state = ServeState(rag, settings, ensure_corpus=settings.mcp.bundled_corpus and not args.collection,
                       label="rag mcp")
    server = create_server(state)
    writes = "writes on" if settings.mcp.allow_writes else "read-only"
    print(f"rag mcp: serving collection {settings.store.collection!r} over stdio ({writes}); loading the models",
          file=sys.stderr, flush=True)
    state.start_loading()
    try:
        server.run("stdio")
    finally:
        state.close()
    return 0

"""The MCP server: the tools of `tools.py` on the official SDK's `MCPServer`, for stdio (`rag mcp`) and for
streamable HTTP (`/mcp` on `rag serve`).

Both hold a `ServeState` (rag_app/serve/state.py): the `RAG` whose models load once on a background thread, and the
fixed pool answers run on. A tool call waits for the models (up to `mcp.ready_timeout_s`), runs its work on that
pool, and turns a `RagError` into the tool's error result, reason and fix included; the server keeps serving. The
long calls (`ask`, `ingest_files`) send progress notifications when the client asked for them.

Imported only by `rag mcp` and `rag serve`: it imports the `mcp` SDK at module level (its tool signatures are read
by the SDK to build the input schemas).
"""

import asyncio
import functools
import time
from collections.abc import Callable
from typing import Annotated, Any

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings
from mcp.types import ToolAnnotations
from pydantic import Field

from rag_app import __version__
from rag_app.errors import RagError
from rag_app.mcp.schemas import AskResult, Collections, Deleted, Documents, HistoryTurn, IngestResult, SearchResult
from rag_app.mcp.tools import DocumentTools

READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)
#: Seconds between two progress notifications of one call (the last piece of an answer may go unreported).
PROGRESS_EVERY_S = 0.1

CollectionArg = Annotated[str | None, Field(description="the collection to use (list_collections names them); "
                                                        "default: the server's default collection")]


def create_server(state) -> MCPServer:
    """The MCP server over `state` (a `ServeState`): read tools always, write tools when `mcp.allow_writes`.

    Args:
        state: what `rag serve` holds: `rag`, `settings`, the load status (`ready`, `failure`, `step`) and the
            `answer_pool` the calls run on. Its models are loaded by whoever owns it (`state.start_loading()`).
    """
    settings = state.settings
    tools = DocumentTools(state.rag, settings)
    server = MCPServer("rag", title="Your documents", version=__version__, instructions=instructions(settings),
                       log_level="WARNING")

    async def run(work: Callable[..., Any], *args: Any, ctx: Context | None = None) -> Any:
        """`work(*args)` on the answer pool once the models are loaded; a `RagError` becomes the tool's error."""
        await wait_ready(state, settings.mcp.ready_timeout_s)
        loop = asyncio.get_running_loop()
        extra = {"report": progress_reporter(ctx, loop)} if ctx is not None else {}
        try:
            return await loop.run_in_executor(state.answer_pool, functools.partial(work, *args, **extra))
        except RagError as exc:
            raise ToolError(str(exc)) from None

    @server.tool(annotations=READ_ONLY)
    async def search_documents(
        query: Annotated[str, Field(description="what to look for: a question or keywords")],
        k: Annotated[int | None, Field(ge=1, le=100, description="how many passages (default 4)")] = None,
        collection: CollectionArg = None,
    ) -> SearchResult:
        """Search the user's documents: the passages that best match the query, best first, each with its file,
        section, place (page, slide, sheet, lines) and score. To get a short answer with citations, use `ask`."""
        return await run(tools.search, query, k, collection)

    @server.tool(annotations=READ_ONLY)
    async def ask(
        question: Annotated[str, Field(description="the question, in words")],
        ctx: Context,
        collection: CollectionArg = None,
        history: Annotated[list[HistoryTurn] | None, Field(
            description="earlier turns, oldest first: a follow-up question ('and how is it trained?') is read "
                        "in their light")] = None,
    ) -> AskResult:
        """Answer a question from the user's documents only. The answer cites its sources as [n], numbered as in
        `sources`; when the documents do not say, `refused` is true and the answer says so (nothing is made
        up). Reports progress while it searches and writes."""
        return await run(tools.ask, question, collection, history, ctx=ctx)

    @server.tool(annotations=READ_ONLY)
    async def list_collections() -> Collections:
        """The collections of documents there are, with their chunk counts and which one is the default."""
        return await run(tools.collections)

    @server.tool(annotations=READ_ONLY)
    async def list_documents(collection: CollectionArg = None) -> Documents:
        """The files ingested into a collection, one entry each, with their chunk counts and when they were
        ingested."""
        return await run(tools.documents, collection)

    if settings.mcp.allow_writes:
        @server.tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True,
                                                 open_world_hint=False))
        async def ingest_files(
            paths: Annotated[list[str], Field(min_length=1, description=(
                "files or folders on this machine, inside the folders the user allowed (absolute, or relative "
                "to one of them); folders are read recursively"))],
            ctx: Context,
            collection: Annotated[str | None, Field(description="the collection to add them to (created when "
                                                                "new); default: the default collection")] = None,
        ) -> IngestResult:
            """Add files (PDF, Word, slides, sheets, e-books, mail, HTML, Markdown, text) to the searchable
            documents. Unchanged files are skipped, changed ones replaced. Reports progress file by file."""
            return await run(tools.ingest, paths, collection, ctx=ctx)

        @server.tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True,
                                                 open_world_hint=False))
        async def delete_document(
            source: Annotated[str, Field(description="the document's `source` (or `path`) as list_documents "
                                                     "shows it")],
            collection: CollectionArg = None,
        ) -> Deleted:
            """Remove one document (all its chunks) from a collection. The file itself is not touched."""
            return await run(tools.delete, source, collection)

    return server


def http_routes(server: MCPServer, settings) -> list:
    """The `/mcp` route that `rag serve` adds beside `/v1` (its key and body limit wrap it there).

    Stateless, as `/v1` is: no MCP session lives in the process, so any worker behind a load balancer answers any
    call. Bound to loopback, a request whose `Host` is not a loopback name (127.0.0.1, localhost, [::1] or the bound
    address) is refused (DNS rebinding: a web page whose own name resolves to 127.0.0.1 must not reach the tools). The SDK's session manager must run while the
    app serves: `async with server.session_manager.run()` in its lifespan.
    """
    from rag_app.serve.security import is_loopback

    host = settings.serve.host
    security = None
    if is_loopback(host):
        names = {"127.0.0.1", "localhost", "[::1]", f"[{host}]" if ":" in host else host}
        security = TransportSecuritySettings(allowed_hosts=[f"{name}:*" for name in sorted(names)],
                                             allowed_origins=[f"http://{name}:*" for name in sorted(names)])
    app = server.streamable_http_app(streamable_http_path="/mcp", stateless_http=True, transport_security=security,
                                     max_request_body_size=settings.serve.max_body_kb * 1000)
    return app.routes


def instructions(settings) -> str:
    """What the client's model is told about this server at connection."""
    text = ("Answers and passages from the user's own documents, searched locally. Use `ask` for a grounded answer "
            "with numbered citations, `search_documents` to read the passages themselves, and `list_collections` / "
            f"`list_documents` to see what is there (default collection: {settings.store.collection!r}).")
    if settings.mcp.allow_writes:
        roots = ", ".join(str(root) for root in settings.mcp.write_roots) or "none"
        return text + f" `ingest_files` adds files from these folders: {roots}; `delete_document` removes one."
    return text + (" Adding or deleting documents is off on this server (the user enables it with "
                   "RAG_MCP__ALLOW_WRITES=true and RAG_MCP__WRITE_ROOTS).")


async def wait_ready(state, timeout: float) -> None:
    """Wait until the models are loaded.

    Raises:
        ToolError: they failed to load, or are still loading after `timeout` seconds (the reason says which).
    """
    deadline = time.monotonic() + timeout
    while not state.ready.is_set():
        if state.failure:
            raise ToolError(f"the models failed to load: {state.failure}")
        if time.monotonic() > deadline:
            raise ToolError(f"the server is still starting ({state.step}); call again in a moment")
        await anyio.sleep(0.05)


def progress_reporter(ctx: Context, loop: asyncio.AbstractEventLoop) -> Callable[[float, float | None, str], None]:
    """A `report(progress, total, message)` for a worker thread: sends the call's progress notification on the
    event loop (a no-op when the client did not ask for progress), at most every `PROGRESS_EVERY_S`."""
    last = 0.0

    def report(progress: float, total: float | None, message: str) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last < PROGRESS_EVERY_S and not (total and progress >= total):
            return
        last = now
        sent = asyncio.run_coroutine_threadsafe(ctx.report_progress(progress, total, message), loop)
        try:
            sent.result(timeout=10)  # in order, before the result
        except Exception:  # noqa: BLE001 - a client gone or slow: the work goes on, unreported
            sent.cancel()

    return report

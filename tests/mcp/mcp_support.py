"""The official MCP SDK's client against our servers for real: `rag mcp` spawned over stdio, or `rag serve`'s /mcp
over streamable HTTP. A `Client` keeps one `ClientSession` open on its own event-loop thread, so a module-scoped
fixture can share one server process between tests, and several calls can be put in flight at once."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
sys.path.insert(0, str(REPO / "tests" / "serve"))
from serve_support import Server, free_port, serve_env  # noqa: F401 - re-exported

READ_TOOLS = {"search_documents", "ask", "list_collections", "list_documents"}
WRITE_TOOLS = {"ingest_files", "delete_document"}


def stdio_transport(home: Path, *args: str, profile: str | None = "test", **env: str) -> Callable:
    """Opens the stdio transport to a `python -m rag_app mcp ARGS` child (our RAG_ variables only, offline)."""
    from mcp import StdioServerParameters, stdio_client

    home.mkdir(parents=True, exist_ok=True)
    params = StdioServerParameters(command=sys.executable, args=["-m", "rag_app", "mcp", *args],
                                   env=serve_env(home, profile, **env), cwd=str(REPO))
    log = home.parent / f"mcp-{home.name}.log"

    @contextlib.asynccontextmanager
    async def connect():
        with open(log, "a", encoding="utf-8") as errlog:  # noqa: ASYNC230 - opening a log file does not block
            async with stdio_client(params, errlog=errlog) as streams:
                yield streams

    return connect


def http_transport(url: str, key: str | None = None) -> Callable:
    """Opens the streamable HTTP transport to `url` (…/mcp), sending the bearer key when given."""
    import httpx2
    from mcp.client.streamable_http import streamable_http_client

    @contextlib.asynccontextmanager
    async def connect():
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        async with (httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=300)) as http,
                    streamable_http_client(url, http_client=http) as streams):
            yield streams

    return connect


class Client:
    """An initialized `ClientSession` over `connect()`, driven from plain (sync) tests.

    `call` runs one tool call; `gather` puts several in flight at once and waits for all. A call's progress
    notifications are collected as (progress, total, message) when `progress` is given a list.
    """

    def __init__(self, connect: Callable, timeout: float = 300):
        self.connect = connect
        self.timeout = timeout
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="mcp-client", daemon=True)
        self.thread.start()
        self.session = None
        self.init = None
        self._opened = threading.Event()
        self._failure: BaseException | None = None
        self._stop: asyncio.Event | None = None
        self._main = asyncio.run_coroutine_threadsafe(self._hold(), self.loop)
        if not self._opened.wait(timeout):
            raise TimeoutError(f"the MCP session did not open within {timeout} s")
        if self._failure is not None:
            self.close()
            raise RuntimeError(f"the MCP session failed to open: {self._failure!r}") from self._failure

    async def _hold(self) -> None:
        from mcp import ClientSession

        self._stop = asyncio.Event()
        try:
            async with (self.connect() as (read, write),
                        ClientSession(read, write, read_timeout_seconds=self.timeout) as session):
                self.init = await session.initialize()
                self.session = session
                self._opened.set()
                await self._stop.wait()
        except BaseException as exc:  # noqa: BLE001 - reported to the test that opened the session
            self._failure = exc
        finally:
            self._opened.set()

    def _run(self, coroutine) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(self.timeout)

    async def _call(self, name: str, arguments: dict | None, progress: list | None):
        async def heard(value: float, total: float | None, message: str | None) -> None:
            progress.append((value, total, message))

        return await self.session.call_tool(name, arguments or {}, progress_callback=heard if progress is not None
                                            else None)

    def call(self, name: str, arguments: dict | None = None, progress: list | None = None):
        """One `tools/call`; returns the SDK's `CallToolResult`."""
        return self._run(self._call(name, arguments, progress))

    def gather(self, calls: list[tuple[str, dict]]) -> list:
        """All `calls` in flight at once; their results in order."""
        async def together():
            return await asyncio.gather(*(self._call(name, arguments, None) for name, arguments in calls))

        return self._run(together())

    def tools(self) -> dict[str, Any]:
        return {tool.name: tool for tool in self._run(self.session.list_tools()).tools}

    def close(self) -> None:
        if self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        with contextlib.suppress(Exception):
            self._main.result(60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def error_text(result) -> str:
    """The text of a tool's error result (asserting it is one)."""
    assert result.is_error, f"expected a tool error, got {result.structured_content}"
    return " ".join(getattr(block, "text", "") for block in result.content)


def data(result) -> dict:
    """The structured output of a successful tool call."""
    assert not result.is_error, error_text_of(result)
    return result.structured_content


def error_text_of(result) -> str:
    return " ".join(getattr(block, "text", "") for block in result.content)


def rag_cli(home: Path, *args: str, **env: str) -> str:
    """Runs `python -m rag_app ARGS` (test profile) to the end; returns its stdout."""
    done = subprocess.run([sys.executable, "-m", "rag_app", *args], cwd=REPO, env=serve_env(home, **env),
                          check=False, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout

"""The MCP face: your documents as Model Context Protocol tools, for agents, editors and desktop chat apps.

    rag mcp                              # stdio: what a desktop app or an editor spawns
    rag serve                            # the same tools over streamable HTTP at /mcp, beside /v1

A thin face over `RAG`, like the HTTP one: `tools.py` calls it and maps the results onto typed models
(`schemas.py`), `server.py` registers them as tools on the official SDK's `MCPServer`, and `paths.py` keeps
`ingest_files` inside the folders the user allowed. Writes are off unless `mcp.allow_writes`. The `mcp` SDK is
imported only when this package is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rag_app.mcp.server import create_server

__all__ = ["create_server"]


def __getattr__(name: str):
    if name == "create_server":
        from rag_app.mcp.server import create_server

        return create_server
    raise AttributeError(name)

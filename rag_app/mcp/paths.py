"""Which local paths `ingest_files` may read: those inside the folders the user listed (`mcp.write_roots`).

A path is resolved first (symlinks followed, `..` collapsed), then it must be one of the roots or lie under one;
the resolved path is what gets ingested, so a link swapped afterwards cannot lead elsewhere. Inside an allowed
folder, ingest's own walk never follows a symlink out of it (`ingest.discover`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rag_app.errors import RagError


def confine(paths: Sequence[str], roots: Sequence[Path]) -> list[Path]:
    """The resolved paths, when every one of them lies inside `roots`.

    A relative path is read against each root in turn; the first under which it exists is used.

    Raises:
        RagError: no roots are configured, or a path is empty, does not exist or lies outside them (nothing is
            ingested then: the call is all or nothing).
    """
    if not roots:
        raise RagError("no folder is open to ingest_files: list the folders it may read in RAG_MCP__WRITE_ROOTS "
                       "(or `rag mcp --write-root DIR`)")
    allowed = [Path(root).expanduser().resolve() for root in roots]
    shown = ", ".join(str(root) for root in allowed)
    resolved: list[Path] = []
    for given in paths:
        if not given.strip() or "\x00" in given:
            raise RagError(f"paths: {given!r} is not a path")
        try:
            path = _resolve(Path(given).expanduser(), allowed)
        except (OSError, RuntimeError) as exc:
            raise RagError(f"{given}: cannot resolve the path ({type(exc).__name__}: a symlink loop?)") from None
        if not any(path == root or root in path.parents for root in allowed):
            raise RagError(f"{given}: outside the folders ingest_files may read ({shown}); add its folder to "
                           "RAG_MCP__WRITE_ROOTS to allow it")
        if not path.exists():
            raise RagError(f"{given}: no such file or folder")
        resolved.append(path)
    return resolved


def _resolve(path: Path, roots: list[Path]) -> Path:
    """The path with symlinks followed and `..` collapsed; a relative one under the first root that has it."""
    if path.is_absolute():
        return path.resolve()
    candidates = [(root / path).resolve() for root in roots]
    return next((candidate for candidate in candidates if candidate.exists()), candidates[0])

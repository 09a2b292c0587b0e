"""The documents of a collection: listed one per source file, and deleted by file.

A document here is what the user ingested, a file: its chunks share the `path` metadata the ingest service writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rag_app.services.protocols import ReadsChunks, WritesChunks
from rag_app.settings import Settings


@dataclass
class DocumentInfo:
    path: str  # absolute path: the file's identity in the store
    source: str  # the path shown to users (relative to the ingested folder)
    title: str
    chunks: int
    ingested_at: str  # ISO timestamp of the latest write of any of its chunks
    kind: str


def list_documents(store: ReadsChunks) -> list[DocumentInfo]:
    """One entry per ingested file, sorted by source."""
    grouped: dict[str, DocumentInfo] = {}
    for _, meta, _ in store.iter_records():
        path = str(meta.get("path", ""))
        info = grouped.get(path)
        if info is None:
            info = grouped[path] = DocumentInfo(path=path, source=str(meta.get("source", path)),
                                                title=str(meta.get("title", "")), chunks=0,
                                                ingested_at="", kind=str(meta.get("kind", "")))
        info.chunks += 1
        info.ingested_at = max(info.ingested_at, str(meta.get("ingested_at", "")))
    return sorted(grouped.values(), key=lambda d: (d.source, d.path))


def stale_files(store: ReadsChunks, versions: dict[str, str]) -> list[str]:
    """Of the files in `versions` (a file's `path` -> the sha256 of its bytes now), those the collection holds in
    another version; a file it does not hold is not stale."""
    if not versions:
        return []
    held = store.get_where({"path": {"$in": sorted(versions)}})
    return sorted({str(meta.get("path")) for meta in held.get("metadatas") or []
                   if meta and meta.get("file_hash") != versions.get(str(meta.get("path")))})


def delete_document(settings: Settings, store: WritesChunks, path: str) -> int:
    """Delete every chunk of one file from the collection; an uploaded copy inside the data home goes too.

    Args:
        settings: gives the uploads folder.
        store: the collection.
        path: the file's `path` as listed by `list_documents`.

    Returns:
        The number of chunks deleted.
    """
    with store.write():
        ids = store.get_where({"path": path})["ids"]
        store.delete(ids)
    _remove_upload(settings, path)
    return len(ids)


def _remove_upload(settings: Settings, path: str) -> None:
    """Remove the stored upload, so re-ingesting the uploads folder does not bring the document back."""
    uploads = settings.uploads_dir.resolve()
    file = Path(path)
    if file.is_file() and uploads in file.resolve().parents:
        file.unlink(missing_ok=True)

"""Safe storage for uploaded files: each lands inside `<data home>/uploads/<collection>/` or is rejected with a reason.

A browser sends a file name we do not control. We never join it onto a path as given: names with NUL bytes,
absolute paths or `..` parts are rejected, the rest are reduced to a plain base name of safe characters, and the
final path is checked to lie inside the collection's upload folder before anything is written.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath

from rag_app.errors import RagError
from rag_app.settings import Settings

MAX_NAME_CHARS = 120
_UNSAFE = re.compile(r"[^A-Za-z0-9._ -]+")
_COLLECTION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{1,61}[A-Za-z0-9]")


@dataclass
class UploadResult:
    """What `save_uploads` did: the stored paths, and the files it refused with the reason."""

    saved: list[Path] = field(default_factory=list)
    rejected: list[dict[str, str]] = field(default_factory=list)  # [{name, error}]


def sanitize_filename(name: str) -> str:
    """A safe base name for an uploaded file.

    Args:
        name: the name the client sent.

    Returns:
        The name reduced to letters, digits, `.`, `_`, `-` and spaces, at most `MAX_NAME_CHARS` long, extension kept.

    Raises:
        RagError: the name holds a NUL byte, is an absolute path, has a `..` part, or has nothing usable left.
    """
    if "\x00" in name:
        raise RagError("the file name contains a NUL byte")
    if not name.strip():
        raise RagError("the file name is empty")
    for flavour in (PurePosixPath, PureWindowsPath):
        path = flavour(name)
        if path.is_absolute() or path.anchor:
            raise RagError("the file name is an absolute path")
        if ".." in path.parts:
            raise RagError("the file name contains '..'")
    base = re.split(r"[\\/]", name)[-1]
    base = _UNSAFE.sub("_", base).strip(" .")
    if not base or set(base) <= {"_", "."}:
        raise RagError("the file name has no usable characters")
    if len(base) > MAX_NAME_CHARS:
        stem, dot, suffix = base.rpartition(".")
        if dot and 0 < len(suffix) <= 16:
            base = stem[: MAX_NAME_CHARS - len(suffix) - 1] + "." + suffix
        else:
            base = base[:MAX_NAME_CHARS]
    return base


def check_collection_name(name: str) -> str:
    """The name itself when it is a valid collection name; otherwise a `RagError` that says the rule."""
    if not _COLLECTION.fullmatch(name):
        raise RagError(f"collection name {name!r} is invalid: use 3-63 letters, digits, '.', '_' or '-', "
                       "starting and ending with a letter or digit")
    return name


def upload_dir(settings: Settings, collection: str) -> Path:
    """The folder holding a collection's uploads (not created)."""
    return settings.uploads_dir / check_collection_name(collection)


def save_uploads(settings: Settings, collection: str, files: Iterable[tuple[str, bytes]],
                 max_mb: float | None = None) -> UploadResult:
    """Store uploaded files inside the data home; a bad file is rejected and the others go on.

    Args:
        settings: gives the uploads folder (`settings.uploads_dir`) and the default size limit.
        collection: the target collection, one sub-folder each.
        files: (client file name, content) pairs.
        max_mb: size limit per file; default `settings.ingest.max_file_mb`.

    Returns:
        An `UploadResult`. A file with the same sanitised name as an earlier upload replaces it (a new version).

    Raises:
        RagError: the collection name is invalid.
    """
    limit = int((max_mb if max_mb is not None else settings.ingest.max_file_mb) * 1_000_000)
    folder = upload_dir(settings, collection)
    result = UploadResult()
    for name, content in files:
        try:
            safe = sanitize_filename(name)
        except RagError as exc:
            result.rejected.append({"name": _printable(name), "error": str(exc)})
            continue
        if len(content) > limit:
            result.rejected.append({"name": safe, "error": f"larger than the {limit / 1e6:g} MB limit"})
            continue
        if not content:
            result.rejected.append({"name": safe, "error": "the file is empty"})
            continue
        if not folder.resolve().is_relative_to(settings.home.resolve()):  # e.g. a planted symlink to elsewhere
            result.rejected.append({"name": safe, "error": "the uploads folder resolves outside the data home"})
            continue
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / safe
        if target.resolve().parent != folder.resolve():
            result.rejected.append({"name": safe, "error": "the file name resolves outside the uploads folder"})
            continue
        _write_atomically(target, content)
        result.saved.append(target)
    return result


def _write_atomically(target: Path, content: bytes) -> None:
    """Write via a temp file and a rename, so a half-written upload is never ingested."""
    handle, temp = tempfile.mkstemp(prefix=".upload-", dir=target.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(content)
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def _printable(name: str) -> str:
    return name.replace("\x00", "\\0")[:MAX_NAME_CHARS]

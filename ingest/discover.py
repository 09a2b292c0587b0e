"""Find the files to ingest under the given paths, safely.

Iterative (no recursion limit on deep trees), never follows directory symlinks (no loops), follows a file
symlink only to a file inside the ingested folder, skips hidden and tool folders, and reports what it cannot use
instead of raising.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

IGNORED_DIRS = frozenset({".git", ".hg", ".svn", ".venv", "venv", "__pycache__", "node_modules", ".mypy_cache",
                          ".pytest_cache", ".ipynb_checkpoints", ".tox", ".idea", ".vscode"})


@dataclass(frozen=True)
class FoundFile:
    path: Path  # absolute, resolved: the file's identity in the store
    rel: str  # POSIX path relative to the ingested root, shown to users
    root: Path  # the ingested root (a directory), used by --prune
    size: int


@dataclass(frozen=True)
class Problem:
    path: str
    error: str


@dataclass
class Discovery:
    files: list[FoundFile]
    problems: list[Problem]  # could not be read: reported as failed
    skipped: list[Problem]  # unsupported types: reported with the reason, not failures
    roots: list[Path]  # folders given, for --prune


def discover(paths: list[str | Path], max_bytes: int) -> Discovery:
    """Find supported files; unique by resolved path, sorted for determinism."""
    found: dict[Path, FoundFile] = {}
    problems: list[Problem] = []
    skipped: list[Problem] = []
    roots: list[Path] = []
    for given in paths:
        given = Path(given).expanduser()
        if not given.exists() and not given.is_symlink():
            problems.append(Problem(str(given), "no such file or directory"))
            continue
        try:
            resolved = given.resolve(strict=True)
        except (OSError, RuntimeError) as exc:
            problems.append(Problem(str(given), f"cannot resolve path ({exc.__class__.__name__}: symlink loop?)"))
            continue
        if resolved.is_dir():
            roots.append(resolved)
            _walk(resolved, max_bytes, found, problems, skipped)
        else:
            _consider(resolved, resolved.name, resolved.parent, max_bytes, found, problems, skipped)
    files = sorted(found.values(), key=lambda f: (str(f.root), f.rel))
    return Discovery(files, problems, skipped, roots)


def _walk(root: Path, max_bytes: int, found: dict, problems: list[Problem], skipped: list[Problem]) -> None:
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            shown = folder.relative_to(root).as_posix() if folder != root else str(folder)
            problems.append(Problem(shown, f"cannot list folder ({exc.strerror or exc})"))
            continue
        for entry in entries:
            full = Path(entry.path)
            rel = full.relative_to(root).as_posix()
            if entry.name.startswith(".") or entry.name in IGNORED_DIRS:
                continue
            try:
                if entry.is_symlink():
                    try:
                        target = full.resolve(strict=True)
                    except (OSError, RuntimeError):
                        problems.append(Problem(rel, "broken symlink or symlink loop"))
                        continue
                    reason = _symlink_refusal(full, target, root)
                    if reason:
                        problems.append(Problem(rel, reason))
                        continue
                    _consider(full, rel, root, max_bytes, found, problems, skipped, identity=target)
                elif entry.is_dir(follow_symlinks=False):
                    stack.append(full)
                elif entry.is_file(follow_symlinks=False):
                    _consider(full, rel, root, max_bytes, found, problems, skipped)
                # sockets, fifos and devices are ignored on purpose
            except OSError as exc:
                problems.append(Problem(rel, f"cannot read ({exc.strerror or exc})"))


def _symlink_refusal(link: Path, target: Path, root: Path) -> str:
    """Why a symlink found under `root` is not followed ("" when it is: a file inside the ingested folder).

    Folder links are never followed: one inside the folder only leads to files walked anyway, one to a folder
    that holds it is a loop, one outside leads out. A file link is followed only to a file inside the folder."""
    inside = target == root or root in target.parents
    if target.is_dir():
        if target == link.parent or target in link.parent.parents:
            return "symlink loop (points at a folder that holds it): not followed"
        if not inside:
            return "symlink to a folder outside the ingested folder: not followed; ingest that folder directly"
        return "symlink to a folder: not followed (avoids loops); ingest it directly"
    if not inside:
        return "symlink to a file outside the ingested folder: not followed; ingest that file directly"
    return ""


def _consider(path: Path, rel: str, root: Path, max_bytes: int, found: dict, problems: list[Problem],
              skipped: list[Problem], identity: Path | None = None) -> None:
    from ingest.loaders import is_supported

    identity = identity or path
    try:
        info = os.stat(identity)
    except OSError as exc:
        problems.append(Problem(rel, f"cannot read ({exc.strerror or exc})"))
        return
    if not stat.S_ISREG(info.st_mode):
        return
    if not is_supported(path):
        skipped.append(Problem(rel, f"unsupported file type '{path.suffix or path.name}'"))
        return
    if info.st_size > max_bytes:
        problems.append(Problem(rel, f"file is {info.st_size / 1e6:.1f} MB, over the {max_bytes / 1e6:g} MB limit "
                                     "(raise RAG_INGEST__MAX_FILE_MB to ingest it)"))
        return
    existing = found.get(identity)
    # A file reached through a symlink first (names sort before it) is shown under its real name once that is seen.
    if existing is None or (path == identity and existing.root / existing.rel != identity):
        found[identity] = FoundFile(path=identity, rel=rel, root=root, size=info.st_size)

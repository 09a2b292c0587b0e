"""Files written so that a crash leaves either the old file or the whole new one (for the index's state files)."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path


def write_json(path: Path, payload: dict) -> None:
    """Write `payload` as JSON to a temporary file, fsync it, then atomically replace `path` with it."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(payload, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)

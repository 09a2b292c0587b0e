"""Reading the main segment's `.npy` arrays without `np.load`'s `ast.literal_eval` of the header.

CPython 3.11's AST constructor keeps its recursion depth per interpreter, not per thread (gh-106905): an index loaded
in a background thread while another thread parses Python (Streamlit compiles each page it first runs) can fail
with "SystemError: AST constructor recursion depth mismatch". The headers numpy writes for our arrays have one fixed
shape, read here with a regular expression; any other header falls back to `np.load`.
"""

from __future__ import annotations

import math
import re
import struct
from pathlib import Path

import numpy as np

# (No "O": object arrays would need unpickling, which np.load's allow_pickle=False refuses.)
_HEADER = re.compile(r"\{'descr': '([<>|=]?[A-NP-Za-z]\d*)', 'fortran_order': False, "
                     r"'shape': \(((?:\d+, ?)*\d*)\), \}\s*")
_LENGTH_FORMAT = {(1, 0): "<H", (2, 0): "<I", (3, 0): "<I"}


def load_array(path: Path, mmap: bool = False) -> np.ndarray:
    """The array stored at `path`, mapped read-only when `mmap` (as a plain ndarray view of the map)."""
    with open(path, "rb") as handle:
        version = np.lib.format.read_magic(handle)
        length_format = _LENGTH_FORMAT.get(version)
        match = None
        if length_format:
            (length,) = struct.unpack(length_format, handle.read(struct.calcsize(length_format)))
            match = _HEADER.fullmatch(handle.read(length).decode("latin1"))
        if match is None:
            return np.asarray(np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False))
        dtype = np.dtype(match[1])
        shape = tuple(int(size) for size in match[2].replace(" ", "").split(",") if size)
        count = math.prod(shape)
        if not mmap or count == 0:  # (an empty region cannot be mapped)
            return np.fromfile(handle, dtype=dtype, count=count).reshape(shape)
        return np.asarray(np.memmap(path, dtype=dtype, mode="r", offset=handle.tell(), shape=shape))

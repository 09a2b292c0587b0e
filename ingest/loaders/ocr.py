"""OCR, offline: page images → text, by one of two engines behind one small interface.

- `tesseract`: Debian's `tesseract-ocr` command (`make ocr-deps`). The default: on our measured pages it read
  100 % of the characters of clean and 99.9 % of noisy pages at 0.7-1.1 pages/s, where rapidocr read 99.9 % and
  87 % at 0.2-0.4 pages/s (docs/benchmarks.md, "OCR").
- `rapidocr`: PP-OCRv4 models run by onnxruntime, shipped inside the `rapidocr-onnxruntime` wheel (nothing is
  downloaded at run time; `pip install -e .[ocr]`); the fallback where the tesseract command cannot be installed.

`ocr_engine()` picks one (each engine is built once per process): the one named by the `ingest.ocr_engine`
setting, which the ingest service passes in with `use_ocr_engine`, or the first available for "auto"; `None`
means no engine is available (or "off"), and callers say so in their LoadError.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import os
import shutil
import subprocess
from abc import ABC, abstractmethod
from collections.abc import Callable

from ingest.types import LoadError

#: Pages are rendered at this resolution for OCR (the accuracy/speed sweet spot measured in docs/benchmarks.md).
OCR_DPI = 200


class OcrEngine(ABC):
    """Reads the text of one page image; lines in reading order, a blank line between paragraphs."""

    name: str

    @abstractmethod
    def read(self, image) -> str:
        """The text of a PIL image (any mode)."""

    @abstractmethod
    def words(self, image) -> list[tuple[str, tuple[int, int, int, int]]]:
        """The text of a PIL image as boxes in reading order: (text, (left, top, right, bottom) in pixels); a box
        is a word (tesseract) or a line (rapidocr). Used to highlight a cited sentence on an OCR'd page."""


class RapidOcrEngine(OcrEngine):
    name = "rapidocr"

    def __init__(self):
        from rapidocr_onnxruntime import RapidOCR

        # With the line-orientation classifier on, 3 of 24 lines of a plain 12 pt page were lost (87 % accuracy);
        # without it, none (100 %). Upside-down lines are the price.
        self._ocr = RapidOCR(use_cls=False)

    def read(self, image) -> str:
        import numpy as np

        result, _ = self._ocr(np.asarray(image.convert("RGB")))
        return lines_to_text([(box, text) for box, text, _score in (result or [])])

    def words(self, image) -> list[tuple[str, tuple[int, int, int, int]]]:
        import numpy as np

        result, _ = self._ocr(np.asarray(image.convert("RGB")))
        out = []
        for box, text, _score in result or []:
            xs, ys = [point[0] for point in box], [point[1] for point in box]
            out.append((text, (int(min(xs)), int(min(ys)), int(max(xs)), int(max(ys)))))
        out.sort(key=lambda item: ((item[1][1] + item[1][3]) / 2, item[1][0]))
        return out


class TesseractEngine(OcrEngine):
    name = "tesseract"

    def __init__(self):
        self._binary = shutil.which("tesseract")
        if self._binary is None:
            raise RuntimeError("the tesseract command is not installed (make ocr-deps)")

    def read(self, image) -> str:
        return self._run(image).replace("\f", "").strip()

    def words(self, image) -> list[tuple[str, tuple[int, int, int, int]]]:
        out = []
        for row in self._run(image, "tsv").splitlines()[1:]:  # level page block par line word left top width height conf text
            cells = row.split("\t")
            if len(cells) == 12 and cells[0] == "5" and cells[11].strip():
                left, top, width, height = (int(cells[i]) for i in range(6, 10))
                out.append((cells[11], (left, top, left + width, top + height)))
        return out

    def _run(self, image, *config: str) -> str:
        import io

        raw = io.BytesIO()
        image.convert("L").save(raw, format="PNG")
        done = subprocess.run([self._binary, "-", "-", "-l", "eng", "--psm", "3", *config], input=raw.getvalue(),
                              capture_output=True, timeout=300, check=False,
                              env={**os.environ, "OMP_THREAD_LIMIT": "1"})
        if done.returncode != 0:
            raise LoadError(f"tesseract failed: {done.stderr.decode(errors='replace').strip()[:160]}")
        return done.stdout.decode("utf-8", "replace")


#: name → engine class, in order of preference
OCR_ENGINES: dict[str, type[OcrEngine]] = {"tesseract": TesseractEngine, "rapidocr": RapidOcrEngine}


#: The engine the current ingest asked for ("auto", "off" or a name in OCR_ENGINES); set by `use_ocr_engine`.
_CHOICE: contextvars.ContextVar[str] = contextvars.ContextVar("ocr_engine", default="auto")


@contextlib.contextmanager
def use_ocr_engine(name: str):
    """Within the block, `ocr_engine()` means this engine ("auto", "off", "tesseract", "rapidocr")."""
    token = _CHOICE.set(name)
    try:
        yield
    finally:
        _CHOICE.reset(token)


def ocr_engine(name: str | None = None) -> OcrEngine | None:
    """The named engine (default: the current choice, see `use_ocr_engine`), the first available for "auto";
    None when it is "off" or not installed.

    Raises:
        LoadError: for an unknown engine name.
    """
    choice = name or _CHOICE.get()
    return _engine(None if choice == "auto" else choice)


@functools.lru_cache(maxsize=None)
def _engine(name: str | None) -> OcrEngine | None:
    """One engine per process and name (rapidocr loads its models once)."""
    if name == "off":
        return None
    if name is not None and name not in OCR_ENGINES:
        raise LoadError(f"unknown OCR engine {name!r} (choose one of {', '.join(OCR_ENGINES)} or off)")
    for candidate in [name] if name else list(OCR_ENGINES):
        try:
            return OCR_ENGINES[candidate]()
        except (ImportError, RuntimeError, OSError):
            continue
    return None


#: Told the pages OCR'd so far of the file being loaded, as (done, total); set by `report_ocr_pages`.
_PAGES: contextvars.ContextVar[Callable[[int, int], None] | None] = contextvars.ContextVar("ocr_pages", default=None)


@contextlib.contextmanager
def report_ocr_pages(callback: Callable[[int, int], None]):
    """Within the block, loaders that OCR pages call `callback(done, total)`: once with 0 before the first page
    (OCR is slow: a page takes about a second), then after each one."""
    token = _PAGES.set(callback)
    try:
        yield
    finally:
        _PAGES.reset(token)


def ocr_pages_done(done: int, total: int) -> None:
    """For loaders: `done` of the `total` pages this file needs OCR'd are read."""
    callback = _PAGES.get()
    if callback is not None:
        callback(done, total)


NO_ENGINE = "no OCR engine installed (make ocr-deps installs tesseract-ocr; or pip install rapidocr-onnxruntime)"


def read_image(engine: OcrEngine, image) -> str:
    """OCR one image, tidied like a text layer: trailing spaces dropped, at most one blank line in a row."""
    import re

    text = engine.read(image)
    text = "\n".join(line.rstrip() for line in text.replace("\x0c", "").split("\n"))
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def lines_to_text(boxes: list[tuple[list, str]]) -> str:
    """Text boxes (four corner points, text) → lines top to bottom, words left to right, paragraphs by gaps."""
    items = []
    for box, text in boxes:
        ys = [point[1] for point in box]
        xs = [point[0] for point in box]
        items.append((min(ys), max(ys), min(xs), text.strip()))
    items = [item for item in items if item[3]]
    items.sort(key=lambda item: (item[0] + item[1]) / 2)
    lines: list[list[tuple[float, float, float, str]]] = []
    for item in items:
        centre = (item[0] + item[1]) / 2
        if lines:
            top = min(i[0] for i in lines[-1])
            bottom = max(i[1] for i in lines[-1])
            if top <= centre <= bottom:  # on the same line as the previous box
                lines[-1].append(item)
                continue
        lines.append([item])
    out: list[str] = []
    previous_bottom, previous_height = None, None
    for line in lines:
        top, bottom = min(i[0] for i in line), max(i[1] for i in line)
        if previous_bottom is not None and top - previous_bottom > 0.9 * (previous_height or 0):
            out.append("")
        out.append(" ".join(i[3] for i in sorted(line, key=lambda i: i[2])))
        previous_bottom, previous_height = bottom, bottom - top
    return "\n".join(out).strip()

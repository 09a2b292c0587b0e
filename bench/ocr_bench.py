"""OCR engines compared on pages rendered from a text PDF whose text we know: character accuracy and pages/s.

Pages: a hand-built text PDF (tests/fixtures/make_fixtures.minimal_pdf) rasterised by pypdfium2 at 150/200/300 dpi,
plus "skewed" (rotated 2.5 degrees, as a sheet fed askew) and "noisy" (speckle noise, blur, JPEG quality 35) at
200 dpi. Accuracy = 1 - Levenshtein distance / length of the truth, both with whitespace collapsed.

Run: `.venv/bin/python bench/ocr_bench.py [--pages 2] [--engines rapidocr,tesseract]`; prints a Markdown table.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SENTENCES = [
    "The Velvet Pippin orchard covers 212 hectares near Lake Ombra.",
    "Harvest crews picked 9,400 crates of apples in the autumn of 2019.",
    "Soil samples show a high clay content on the northern terraces.",
    "The cooperative mill pressed 61% of the crop into cider and juice.",
    "Rainfall in July was 48 mm, about half of the ten-year average.",
    "Keeper Ross replaced the cracked lantern glass in three days.",
    "Invoice No. 2207-B lists 11 hours of gill net mending at 35 EUR.",
    "The ferry Morrow docks at pier 7 on Fridays from 08:15 to 09:40.",
    "A yellow mooring buoy drifted off pier 2 during the night storm.",
    "Sugar kelp grows on 14 longlines anchored at both ends in 12 m of water.",
]


def page_lines(page: int, n_lines: int = 24) -> list[str]:
    rng = random.Random(page)
    return [rng.choice(SENTENCES) for _ in range(n_lines)]


def make_pdf(n_pages: int) -> tuple[bytes, list[str]]:
    spec = importlib.util.spec_from_file_location("make_fixtures", ROOT / "tests/fixtures/make_fixtures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    pages = [page_lines(p) for p in range(n_pages)]
    return module.minimal_pdf(pages), ["\n".join(lines) for lines in pages]


def render(pdf: bytes, index: int, dpi: int):
    import pypdfium2 as pdfium

    document = pdfium.PdfDocument(pdf)
    try:
        return document[index].render(scale=dpi / 72, grayscale=True).to_pil()
    finally:
        document.close()


def skewed(image):
    return image.rotate(2.5, expand=True, fillcolor=255)


def noisy(image, seed: int = 0):
    import numpy as np
    from PIL import Image, ImageFilter

    rng = np.random.default_rng(seed)
    pixels = np.asarray(image.convert("L"), dtype=np.int16)
    pixels = pixels + rng.normal(0, 28, pixels.shape).astype(np.int16)
    speckle = rng.random(pixels.shape) < 0.004
    pixels[speckle] = 0
    noisy_image = Image.fromarray(np.clip(pixels, 0, 255).astype("uint8")).filter(ImageFilter.GaussianBlur(0.8))
    raw = io.BytesIO()
    noisy_image.save(raw, format="JPEG", quality=35)
    return Image.open(io.BytesIO(raw.getvalue()))


def levenshtein(a: str, b: str) -> int:
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def accuracy(truth: str, text: str) -> float:
    truth, text = " ".join(truth.split()), " ".join(text.split())
    return max(0.0, 1 - levenshtein(truth, text) / max(1, len(truth)))


VARIANTS = [("clean", 150, None), ("clean", 200, None), ("clean", 300, None), ("skewed", 200, skewed),
            ("noisy", 200, noisy)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=2)
    parser.add_argument("--engines", default="rapidocr,tesseract")
    args = parser.parse_args()
    from ingest.loaders.ocr import OCR_ENGINES

    pdf, truths = make_pdf(args.pages)
    print(f"load before: {os.getloadavg()[0]:.2f}", file=sys.stderr)
    rows = []
    for name in args.engines.split(","):
        started = time.perf_counter()
        engine = OCR_ENGINES[name]()
        load_s = time.perf_counter() - started
        for variant, dpi, transform in VARIANTS:
            scores, seconds = [], 0.0
            for index, truth in enumerate(truths):
                image = render(pdf, index, dpi)
                if transform is not None:
                    image = transform(image)
                started = time.perf_counter()
                text = engine.read(image)
                seconds += time.perf_counter() - started
                scores.append(accuracy(truth, text))
            rows.append((name, variant, dpi, sum(scores) / len(scores), len(truths) / seconds, load_s))
            print(rows[-1], file=sys.stderr)
    print(f"load after: {os.getloadavg()[0]:.2f}", file=sys.stderr)
    print("| engine | page | dpi | character accuracy | pages/s | engine start (s) |")
    print("|---|---|---|---|---|---|")
    for name, variant, dpi, score, rate, load_s in rows:
        print(f"| {name} | {variant} | {dpi} | {score:.1%} | {rate:.2f} | {load_s:.1f} |")


if __name__ == "__main__":
    main()

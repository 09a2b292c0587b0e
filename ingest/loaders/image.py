"""Images (PNG, JPEG, TIFF, WebP): their text read by OCR (`ingest.loaders.ocr`), one segment per frame of a
multi-page TIFF (`page`), every chunk marked `ocr=True`."""

from __future__ import annotations

import io
import re
import warnings

from ingest.loaders.base import Loader, default_title, short_reason
from ingest.loaders.ocr import NO_ENGINE, ocr_engine, ocr_pages_done, read_image
from ingest.loaders.segments import Joiner
from ingest.types import Document, LoadError

#: Frames of a TIFF read at most (a fax archive can hold thousands; the rest are reported as left out).
MAX_FRAMES = 200


#: Pixels of an image (or a PDF page) read by OCR at most: 100 MP, a 600 dpi scan of an A2 sheet; a PNG header can
#: claim 50,000 x 50,000 px (2.5 GP, 2.5 GB decoded) in 74 bytes.
MAX_PIXELS = 100_000_000


def check_pixels(size: tuple[int, int], what: str) -> None:
    """Refuse an image whose header claims more than `MAX_PIXELS`, before any pixel is decoded.

    Raises:
        LoadError: naming the size and the limit.
    """
    width, height = size
    if width * height > MAX_PIXELS:
        raise LoadError(f"{what} is {width:,} x {height:,} pixels ({width * height / 1e6:,.0f} MP), over the "
                        f"{MAX_PIXELS / 1e6:.0f} MP limit for OCR")


class ImageLoader(Loader):
    """An image with no text found is refused ("no text found by OCR"), like an empty file."""

    suffixes = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp"})

    def load(self, data: bytes, rel: str, suffix: str) -> list[Document]:
        from PIL import Image, ImageSequence, UnidentifiedImageError

        try:
            with warnings.catch_warnings():  # between Pillow's warning and our limit: fine to read
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                image = Image.open(io.BytesIO(data))  # reads the header only
                check_pixels(image.size, "image")
                image.load()
        except Image.DecompressionBombError as exc:  # Pillow's own limit (twice its warning) met first
            claimed = re.search(r"\((\d+) pixels\)", str(exc))
            size = f" ({int(claimed.group(1)) / 1e6:,.0f} MP)" if claimed else ""
            raise LoadError(f"image has too many pixels{size}, over the {MAX_PIXELS / 1e6:.0f} MP limit for "
                            "OCR") from exc
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
            raise LoadError(f"corrupt or unsupported image: {short_reason(exc)}") from exc
        engine = ocr_engine()
        if engine is None:
            raise LoadError(NO_ENGINE)
        joiner = Joiner()
        n_frames = getattr(image, "n_frames", 1)
        ocr_pages_done(0, min(n_frames, MAX_FRAMES))
        for number, frame in enumerate(ImageSequence.Iterator(image), 1):
            if number > MAX_FRAMES:
                break
            page = number if n_frames > 1 else None
            check_pixels(frame.size, f"frame {number}" if n_frames > 1 else "image")
            joiner.add(read_image(engine, frame), page=page, extra={"ocr": True})
            ocr_pages_done(number, min(n_frames, MAX_FRAMES))
        if not joiner.segments:
            raise LoadError("no text found by OCR")
        return [Document(doc_id=rel, title=default_title(rel), kind="image", segments=joiner.segments,
                         extra={"ocr_engine": engine.name, "pages": n_frames})]

"""Images (PNG, JPEG, TIFF, WebP): their text read by OCR (`ingest.loaders.ocr`), one segment per frame of a
multi-page TIFF (`page`), every chunk marked `ocr=True`."""

from __future__ import annotations

import io

from ingest.loaders.base import Loader, default_title, short_reason
from ingest.loaders.ocr import NO_ENGINE, ocr_engine, ocr_pages_done, read_image
from ingest.loaders.segments import Joiner
from ingest.types import Document, LoadError

#: Frames of a TIFF read at most (a fax archive can hold thousands; the rest are reported as left out).
MAX_FRAMES = 200


class ImageLoader(Loader):
    """An image with no text found is refused ("no text found by OCR"), like an empty file."""

    suffixes = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp"})

    def load(self, data: bytes, rel: str, suffix: str) -> list[Document]:
        from PIL import Image, ImageSequence, UnidentifiedImageError

        try:
            image = Image.open(io.BytesIO(data))
            image.load()
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
            joiner.add(read_image(engine, frame), page=page, extra={"ocr": True})
            ocr_pages_done(number, min(n_frames, MAX_FRAMES))
        if not joiner.segments:
            raise LoadError("no text found by OCR")
        return [Document(doc_id=rel, title=default_title(rel), kind="image", segments=joiner.segments,
                         extra={"ocr_engine": engine.name, "pages": n_frames})]

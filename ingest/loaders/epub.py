"""EPUB: the chapters in reading (spine) order, each read like an HTML page, the chapter's title (from the table
of contents, else its first heading) heading its section path and its number the `chapter` locator."""

from __future__ import annotations

import io
import posixpath

from ingest.loaders.archives import open_zip
from ingest.loaders.base import Loader, default_title, short_reason
from ingest.loaders.decoding import decode_text
from ingest.loaders.html import HtmlLoader
from ingest.loaders.segments import Joiner
from ingest.types import Document, LoadError

_HTML = HtmlLoader()


class EpubLoader(Loader):
    """DRM-protected books (an `encryption.xml` naming content files) are refused with that reason."""

    suffixes = frozenset({".epub"})

    def load(self, data: bytes, rel: str, suffix: str) -> list[Document]:
        with open_zip(data, "EPUB") as archive:  # corrupt or a zip bomb: refused before parsing
            if "META-INF/encryption.xml" in archive.namelist():
                encryption = archive.read("META-INF/encryption.xml")
                if b"EncryptedData" in encryption and b"font" not in encryption.lower():  # obfuscated fonts are fine
                    raise LoadError("encrypted EPUB (DRM-protected)")
        try:
            import warnings

            from ebooklib import ITEM_DOCUMENT, epub

            with warnings.catch_warnings():  # ebooklib warns about its own future defaults
                warnings.simplefilter("ignore")
                book = epub.read_epub(io.BytesIO(data), options={"ignore_ncx": False})
            titles = _toc_titles(book.toc)
            chapters = []
            for item_id, _linear in book.spine:
                item = book.get_item_with_id(item_id)
                if item is not None and item.get_type() == ITEM_DOCUMENT:
                    chapters.append((item.get_name(), item.get_content()))
        except Exception as exc:  # noqa: BLE001 - ebooklib raises KeyError/EpubException/... on broken books
            raise LoadError(f"corrupt EPUB: {short_reason(exc)}") from exc

        joiner = Joiner()
        number = 0
        for name, content in chapters:
            try:
                chapter = _HTML.load_text(decode_text(content), name, ".xhtml")
            except LoadError:
                continue  # a cover page or an image-only chapter
            number += 1
            chapter_title = titles.get(name) or _first_heading(chapter) or f"Chapter {number}"
            for seg in chapter.segments:
                section = seg.section
                if not section or section == chapter_title:
                    section = chapter_title
                elif not section.startswith(chapter_title):
                    section = f"{chapter_title} > {section}"
                joiner.add(seg.text, section=section, extra={"chapter": number})
        if not joiner.segments:
            raise LoadError("no text in EPUB")
        meta = book.get_metadata("DC", "title")
        title = " ".join(str(meta[0][0]).split()) if meta else ""
        return [Document(doc_id=rel, title=title or default_title(rel), kind="epub", segments=joiner.segments,
                         extra={"chapters": number})]


def _toc_titles(toc) -> dict[str, str]:
    """Spine file name → its first table-of-contents title (fragments dropped)."""
    titles: dict[str, str] = {}
    for entry in toc:
        if isinstance(entry, tuple):  # (section, children)
            section, children = entry
            _add_title(titles, section)
            titles.update({k: v for k, v in _toc_titles(children).items() if k not in titles})
        else:
            _add_title(titles, entry)
    return titles


def _add_title(titles: dict[str, str], link) -> None:
    href, title = getattr(link, "href", None), getattr(link, "title", None)
    if href and title:
        titles.setdefault(posixpath.normpath(href.split("#", 1)[0]), " ".join(title.split()))


def _first_heading(chapter: Document) -> str:
    for seg in chapter.segments:
        if seg.section:
            return seg.section.split(" > ", 1)[0]
    return chapter.title if chapter.title != default_title(chapter.doc_id) else ""

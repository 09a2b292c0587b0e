"""Zip containers (DOCX, PPTX, XLSX, ODF, EPUB) checked before any parser reads them.

A zip's central directory declares each entry's compressed and uncompressed size, and Python's `zipfile` (which
python-docx, python-pptx, openpyxl, odfpy and ebooklib all read through) never yields more than the declared size
(a lie fails the CRC check), so the declared sizes bound what a parser can be handed. A zip bomb is refused from
them alone, before a byte is inflated: too many entries, an entry or a total too big, or an entry that inflates
far more than documents do (Apache POI's rule: 1:100, with grace for small entries).

A container that is not a zip at all is usually an OLE compound file: a password-protected Office document
(Office encrypts the whole package into an OLE file with `EncryptionInfo` and `EncryptedPackage` streams) or the
old binary format saved under the new suffix.
"""

from __future__ import annotations

import io
import zipfile

from ingest.types import LoadError

MAX_ENTRIES = 10_000
#: One entry's declared uncompressed size (a DOCX's document.xml, an XLSX sheet).
MAX_ENTRY_BYTES = 512 * 2**20
#: All entries together.
MAX_TOTAL_BYTES = 1024 * 2**20
#: Uncompressed : compressed, for entries bigger than `RATIO_GRACE_BYTES` (text XML deflates 5-30x; POI: 100x).
MAX_RATIO = 100
RATIO_GRACE_BYTES = 1 * 2**20

_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


def open_zip(data: bytes, kind: str) -> zipfile.ZipFile:
    """The checked archive of a `kind` file ("DOCX", "XLSX", ...).

    Raises:
        LoadError: encrypted, legacy or corrupt (not a zip), or a zip bomb, with the reason.
    """
    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise LoadError(not_zip_reason(data, kind))
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise LoadError(f"corrupt {kind} (broken zip archive: {exc})") from exc
    check_zip(archive, kind)
    return archive


def check_zip(archive: zipfile.ZipFile, kind: str) -> None:
    """Refuse a zip whose declared sizes are those of a bomb (see the module docstring)."""
    entries = archive.infolist()
    if len(entries) > MAX_ENTRIES:
        raise LoadError(f"{kind} holds {len(entries):,} files, over the {MAX_ENTRIES:,} limit (a zip bomb?)")
    total = 0
    for info in entries:
        total += info.file_size
        name = info.filename[:80]
        if info.file_size > MAX_ENTRY_BYTES:
            raise LoadError(f"{kind} part {name} decompresses to {info.file_size / 2**20:,.0f} MB, over the "
                            f"{MAX_ENTRY_BYTES // 2**20} MB limit (a zip bomb?)")
        if info.file_size > RATIO_GRACE_BYTES and info.file_size > MAX_RATIO * max(1, info.compress_size):
            ratio = info.file_size / max(1, info.compress_size)
            raise LoadError(f"{kind} part {name} compresses {ratio:,.0f}:1 ({info.file_size / 2**20:,.0f} MB), "
                            f"over the {MAX_RATIO}:1 limit (a zip bomb?)")
    if total > MAX_TOTAL_BYTES:
        raise LoadError(f"{kind} decompresses to {total / 2**20:,.0f} MB, over the {MAX_TOTAL_BYTES // 2**20} MB "
                        "limit (a zip bomb?)")


def checked_bytes(data: bytes, kind: str) -> bytes:
    """`data` after `open_zip`'s checks, for parsers that open the archive themselves."""
    open_zip(data, kind).close()
    return data


def not_zip_reason(data: bytes, kind: str) -> str:
    """Why an Office/ODF/EPUB file that should be a zip archive is not: encrypted (a password-protected Office
    file is an OLE container holding an `EncryptedPackage`), the legacy binary format, or corrupt."""
    if data.startswith(_OLE_MAGIC):
        if "EncryptedPackage".encode("utf-16-le") in data or "EncryptionInfo".encode("utf-16-le") in data:
            return f"encrypted {kind} (password required)"
        return (f"encrypted or legacy {kind} (password-protected, or the old binary format: save it as "
                f"{kind.lower()})")
    return f"corrupt {kind} (not a zip archive)"

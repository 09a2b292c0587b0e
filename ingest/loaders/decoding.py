"""Text decoding for loaders: bytes → str, refusing binary files and mojibake."""

from __future__ import annotations

from ingest.types import LoadError

_BINARY_SNIFF = 8192
_ALLOWED_CONTROLS = frozenset("\t\n\r\f\v")


def decode_text(data: bytes) -> str:
    """Decode a text file: UTF-8 (BOM optional), UTF-16/32 (with a BOM, or told by the pattern of its NUL bytes),
    else clean cp1252/latin-1; newlines → "\\n".

    Raises:
        LoadError: "binary file (NUL bytes)" or "not valid UTF-8 text".
    """
    if data.startswith(b"\xef\xbb\xbf"):
        text = _strict(data[3:], "utf-8")
    elif data.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")):
        text = _strict(data, "utf-32")
    elif data.startswith((b"\xff\xfe", b"\xfe\xff")):
        text = _strict(data, "utf-16")
    else:
        if b"\x00" in data[:_BINARY_SNIFF]:
            encoding = _wide_encoding(data[:_BINARY_SNIFF])
            if encoding is None:
                raise LoadError("binary file (NUL bytes)")
            text = _strict(data, encoding)
            if not _looks_like_text(text[:_BINARY_SNIFF]):
                raise LoadError(f"binary file (NUL bytes; not {encoding.upper()} text either)")
        else:
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                text = _legacy_decode(data)
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


def _wide_encoding(sample: bytes) -> str | None:
    """UTF-16 or UTF-32 without a byte-order mark, told by where its NUL bytes fall: text that is mostly ASCII (or
    Latin) has a NUL in every high byte of each code unit, and binary data has them anywhere."""
    for encoding, width, zero_at in (("utf-32-le", 4, (1, 2, 3)), ("utf-32-be", 4, (0, 1, 2)),
                                     ("utf-16-le", 2, (1,)), ("utf-16-be", 2, (0,))):
        units = [sample[i:i + width] for i in range(0, len(sample) - len(sample) % width, width)]
        if len(units) < 4:
            continue
        wide = sum(all(unit[k] == 0 for k in zero_at) and any(unit[k] for k in range(width) if k not in zero_at)
                   for unit in units)
        if wide >= 0.7 * len(units):
            return encoding
    return None


def _strict(data: bytes, encoding: str) -> str:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise LoadError(f"not valid {encoding.upper()} text") from exc


def _legacy_decode(data: bytes) -> str:
    """Windows-1252 or Latin-1, but only when the result reads as text (not random bytes)."""
    for encoding in ("cp1252", "latin-1"):
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        if _looks_like_text(text):
            return text
    raise LoadError("not valid UTF-8 text")


def _looks_like_text(text: str) -> bool:
    non_ascii = 0
    for ch in text:
        if ch < " " or "\x7f" <= ch < "\xa0":
            if ch not in _ALLOWED_CONTROLS:
                return False
        elif ch > "\x7f":
            non_ascii += 1
    # Legacy-encoded prose is mostly ASCII with the odd accent; a high share of high bytes is binary or another
    # encoding that would only decode to mojibake.
    return non_ascii <= 0.3 * max(1, len(text))


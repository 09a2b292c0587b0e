"""E-mail: an `.eml` file is one message, an `.mbox` file many; each message is one Document titled by its
subject, its text starting with From/To/Date/Subject lines, and the `message` number (in the mbox), sender and date
in every chunk's metadata. Attachments whose type has a loader are read by it, as sections "Attachment: name"."""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Callable
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from pathlib import PurePosixPath

from ingest.loaders.base import Loader
from ingest.loaders.segments import Joiner
from ingest.types import Document, LoadError

_MBOX_FROM = re.compile(rb"^From [^\n]*\n", re.M)
_HEADERS = ("from", "to", "cc", "date", "subject")


class MailLoader(Loader):
    """A message without body text or readable attachments still yields its header lines (it is findable).

    Args:
        loader_for: the loader registry's lookup (file name -> loader or None), for reading attachments; the
            registry (`ingest.loaders`) hands it in, so this module does not import the registry that lists it.
    """

    suffixes = frozenset({".eml", ".mbox"})

    def __init__(self, loader_for: Callable[[str], Loader | None] = lambda name: None):
        self.loader_for = loader_for

    def load(self, data: bytes, rel: str, suffix: str) -> list[Document]:
        raws = _split_mbox(data) if suffix == ".mbox" else [data]
        docs = []
        for number, raw in enumerate(raws, 1):
            where = f"message {number}: " if suffix == ".mbox" else ""
            message = _parse(raw, where)
            if not any(message.get(name) for name in _HEADERS):
                if suffix == ".eml":
                    raise LoadError("not an e-mail message (no From/To/Date/Subject header)")
                continue
            in_mbox = suffix == ".mbox"
            doc_id = f"{rel}#{number}" if in_mbox else rel
            docs.append(_message_document(message, doc_id, number if in_mbox else None, self.loader_for))
        if not docs:
            raise LoadError("no messages in mbox (expected lines starting with 'From ')")
        return docs


#: Multipart containers in one message at most (each nests a level, or holds parts beside another): the stdlib
#: parser recurses once per level, so a message nested thousands deep ends in a RecursionError.
MAX_MULTIPARTS = 100
#: Nesting of parts read at most, and parts of one message.
MAX_DEPTH = 20
MAX_PARTS = 1000
_MULTIPART = re.compile(rb"(?im)^content-type:[ \t]*multipart/")
_PART = re.compile(rb"(?im)^content-type:")


def _parse(raw: bytes, where: str = "") -> EmailMessage:
    """A message, refused with a reason when its structure is deeper or bigger than the limits above: counted in
    the raw text before parsing, then measured on the parsed tree without recursion.

    Raises:
        LoadError: "e-mail nested too deeply ..." or "e-mail has too many parts ...".
    """
    multiparts = len(_MULTIPART.findall(raw))
    if multiparts > MAX_MULTIPARTS:
        raise LoadError(f"{where}e-mail nested too deeply or too many parts ({multiparts:,} multipart sections, "
                        f"limit {MAX_MULTIPARTS})")
    parts = len(_PART.findall(raw))
    if parts > MAX_PARTS:
        raise LoadError(f"{where}e-mail has too many parts ({parts:,}, limit {MAX_PARTS})")
    try:
        message = email.message_from_bytes(raw, policy=email.policy.default)
    except RecursionError as exc:
        raise LoadError(f"{where}e-mail nested too deeply to parse") from exc
    stack = [(message, 0)]
    while stack:
        part, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise LoadError(f"{where}e-mail nested too deeply (over {MAX_DEPTH} levels)")
        payload = part.get_payload() if part.is_multipart() else None
        if isinstance(payload, list):
            stack.extend((child, depth + 1) for child in payload)
    return message


def _split_mbox(data: bytes) -> list[bytes]:
    data = data.replace(b"\r\n", b"\n")
    if not data.startswith(b"From "):
        raise LoadError("not an mbox file (it must start with a 'From ' line)")
    starts = [m.start() for m in _MBOX_FROM.finditer(data) if m.start() == 0 or data[m.start() - 2:m.start()] == b"\n\n"]
    pieces = []
    for index, start in enumerate(starts):
        end = starts[index + 1] if index + 1 < len(starts) else len(data)
        body = data[data.index(b"\n", start) + 1:end]
        pieces.append(re.sub(rb"(?m)^>(>*From )", rb"\1", body))  # mboxrd quoting
    return pieces


def _message_document(message: EmailMessage, doc_id: str, number: int | None,
                      loader_for: Callable[[str], Loader | None]) -> Document:
    subject = _header(message, "subject")
    sender = _header(message, "from")
    date = _header(message, "date")
    extra: dict = {"from": sender} if sender else {}
    if date:
        extra["date"] = _iso_date(date)
    if number is not None:
        extra["message"] = number
    lines = [f"{name.title()}: {_header(message, name)}" for name in _HEADERS if _header(message, name)]
    joiner = Joiner()
    body = _body_text(message)
    joiner.add("\n".join(lines) + ("\n\n" + body if body else ""), extra=extra)
    for name, payload in _attachments(message):
        for seg in _attachment_segments(name, payload, loader_for):
            joiner.add(seg.text, section=f"Attachment: {name}" + (f" > {seg.section}" if seg.section else ""),
                       page=seg.page, start_line=seg.start_line, end_line=seg.end_line,
                       extra={**extra, **seg.extra, "attachment": name})
    return Document(doc_id=doc_id, title=subject or "(no subject)", kind="email", segments=joiner.segments,
                    extra=dict(extra))


def _header(message: EmailMessage, name: str) -> str:
    try:
        value = message.get(name)
    except Exception:  # noqa: BLE001 - a malformed header is not worth failing over
        return ""
    return " ".join(str(value).split()) if value else ""


def _iso_date(value: str) -> str:
    try:
        return parsedate_to_datetime(value).isoformat()
    except (TypeError, ValueError):
        return value


def _body_text(message: EmailMessage) -> str:
    try:
        part = message.get_body(preferencelist=("plain", "html"))
    except Exception:  # noqa: BLE001
        part = None
    if part is None:
        return ""
    try:
        content = part.get_content()
    except Exception:  # noqa: BLE001 - an unknown charset or broken transfer encoding
        payload = part.get_payload(decode=True) or b""
        content = payload.decode("utf-8", "replace")
    if part.get_content_subtype() == "html":
        from ingest.loaders.html import HtmlLoader

        try:
            return "\n\n".join(seg.text for seg in HtmlLoader().load_text(content, "body.html", ".html").segments)
        except LoadError:
            return ""
    return "\n".join(line.rstrip() for line in content.replace("\r\n", "\n").split("\n")).strip()


def _attachments(message: EmailMessage):
    for part in message.iter_attachments():
        name = part.get_filename()
        if not name:
            continue
        try:
            payload = part.get_payload(decode=True)
        except Exception:  # noqa: BLE001
            continue
        if payload:
            yield PurePosixPath(name).name, payload


def _attachment_segments(name: str, payload: bytes, loader_for: Callable[[str], Loader | None]):
    """The attachment's segments by the loader for its suffix; none when unsupported or unreadable."""
    loader = loader_for(name)
    if loader is None or isinstance(loader, MailLoader):
        return []
    try:
        docs = loader.load(payload, name, PurePosixPath(name).suffix.lower())
    except Exception:  # noqa: BLE001 - LoadError or a loader bug: a broken attachment never sinks its message
        return []
    return [seg for doc in docs for seg in doc.segments]

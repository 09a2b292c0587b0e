"""Streaming with stop strings: text pieces of a growing reply, cut at the first stop string, and never a piece
that could be the start of one (shared by every LM backend and the LangChain chat-model adapter)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence


def cut_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    cut = min((text.index(s) for s in stop if s and s in text), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)



class StopStreamer:
    """Turn a growing full text into streamed pieces, holding back anything that could be the start of a stop string."""

    def __init__(self, stop: Sequence[str]):
        self.stop = [s for s in stop if s]
        self.sent = 0
        self.done = False

    def feed(self, full: str) -> str:
        text, hit = cut_at_stop(full, self.stop)
        if hit:
            self.done = True
            safe = len(text)
        else:
            hold = 0
            for s in self.stop:
                for n in range(min(len(s) - 1, len(text)), 0, -1):
                    if text.endswith(s[:n]):
                        hold = max(hold, n)
                        break
            safe = len(text) - hold
            if text[:safe].endswith("\ufffd"):  # half a multi-byte character: wait for the rest
                safe -= 1
        piece = text[self.sent:safe] if safe > self.sent else ""
        self.sent = max(self.sent, safe)
        return piece

    def pieces(self, fulls: Iterable[str]) -> Iterator[str]:
        """Stream the pieces of a growing text (each item is the whole text so far), stopping at a stop string."""
        full = ""
        for full in fulls:
            piece = self.feed(full)
            if piece:
                yield piece
            if self.done:
                return
        tail = self.flush(full)
        if tail:
            yield tail

    def flush(self, full: str) -> str:
        text, _ = cut_at_stop(full, self.stop)
        piece = text[self.sent:].replace("\ufffd", "")
        self.sent = len(text)
        return piece


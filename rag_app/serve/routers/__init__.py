"""One router per resource; each endpoint parses the request, calls `RAG`, and maps the result back."""

from __future__ import annotations


def state_of(request):
    """The `ServeState` of the app serving `request`."""
    return request.app.state.serve


def approx_tokens(text: str) -> int:
    """A token count for `usage`: about 4 characters a token (approximate, as the API documents)."""
    return max(1, round(len(text) / 4)) if text else 0

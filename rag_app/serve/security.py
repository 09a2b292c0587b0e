"""Who may call, and how much they may send: the bind check, the bearer key, and request body limits."""

from __future__ import annotations

import hmac
import ipaddress
import json

from rag_app.serve.errors import Unauthorized, error_body


def is_loopback(host: str) -> bool:
    """Whether `host` is a loopback address (127.0.0.0/8, ::1) or `localhost`."""
    if host.strip().lower() in {"localhost", "localhost.localdomain"}:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve anywhere


def check_bind(host: str, api_key: str | None) -> None:
    """Refuse to listen beyond this machine without a key.

    Raises:
        RagError: `host` is not a loopback address and no API key is set.
    """
    from rag_app.errors import RagError

    if not is_loopback(host) and not api_key:
        raise RagError(f"refusing to serve on {host} without an API key: anyone who can reach it could read your "
                       "documents. Set RAG_SERVE__API_KEY (clients send `Authorization: Bearer <key>`), or bind to "
                       "127.0.0.1")


class BodyLimit:
    """ASGI middleware: a request body over its limit gets 413 before the app sees more of it.

    Multipart uploads (`/v1/ingest`) have their own, larger limit. A declared `Content-Length` over the limit is
    refused at once; a chunked body is counted as it arrives, and the app's response is replaced by the 413.
    """

    def __init__(self, app, *, max_json_bytes: int, max_upload_bytes: int, upload_paths: tuple[str, ...]):
        self.app = app
        self.max_json = max_json_bytes
        self.max_upload = max_upload_bytes
        self.upload_paths = upload_paths

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.max_upload if scope.get("path", "") in self.upload_paths else self.max_json
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return await self._refuse(send, limit)
        seen = 0
        over = False
        started = False

        async def counted_receive():
            nonlocal seen, over
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    over = True
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message):
            nonlocal started
            if over:
                return  # the 413 is sent below instead
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except Exception:
            if not over or started:
                raise
        if over and not started:
            await self._refuse(send, limit)

    @staticmethod
    async def _refuse(send, limit: int) -> None:
        what = f"{limit / 1e6:g} MB" if limit >= 1_000_000 else f"{limit / 1000:g} KB"
        body = json.dumps(error_body(f"the request body is larger than the {what} limit "
                                     "(RAG_SERVE__MAX_BODY_KB, RAG_SERVE__MAX_UPLOAD_MB)",
                                     "invalid_request_error", "body")).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


class ApiKeyGate:
    """ASGI middleware: with a key set, every request under `prefixes` (`/v1`, `/mcp`) needs
    `Authorization: Bearer <key>`, else 401.

    Checked before anything of the request is read (a wrong key never learns whether its JSON was valid); the
    comparison takes constant time. `/health` and `/ready` stay open for load balancers.
    """

    def __init__(self, app, *, api_key: str | None, prefixes: tuple[str, ...] = ("/v1",)):
        self.app = app
        self.expected = (api_key or "").encode()
        self.prefixes = prefixes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not self.expected or not scope.get("path", "").startswith(self.prefixes):
            return await self.app(scope, receive, send)
        header = dict(scope.get("headers") or []).get(b"authorization", b"")
        scheme, _, token = header.partition(b" ")
        if scheme.lower() == b"bearer" and token.strip() and hmac.compare_digest(token.strip(), self.expected):
            return await self.app(scope, receive, send)
        what = "wrong" if token.strip() else "missing"
        problem = Unauthorized(f"{what} API key: send `Authorization: Bearer <key>` with the server's "
                               "RAG_SERVE__API_KEY")
        body = json.dumps(error_body(str(problem), problem.type, "authorization")).encode()
        await send({"type": "http.response.start", "status": 401,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"www-authenticate", b"Bearer")]})
        await send({"type": "http.response.body", "body": body})

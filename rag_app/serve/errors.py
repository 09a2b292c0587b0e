"""HTTP errors: every `RagError` becomes `{"error": {"message", "type", "param"}}` with a status code.

The OpenAI error shape, so OpenAI clients raise their own typed errors (`openai.NotFoundError`, ...). A request
FastAPI cannot parse (bad JSON, a missing field) is a 400 naming the field; nothing else is caught broadly.
"""

from __future__ import annotations

import re

from rag_app.errors import EmbedderMismatchError, RagError, StoreLockedError, StoreUnavailableError
from rag_app.settings import SettingsError


class ApiError(RagError):
    """A `RagError` with its HTTP status, OpenAI error type and the request field at fault."""

    status = 400
    type = "invalid_request_error"

    def __init__(self, message: str, *, param: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.param = param
        self.headers = headers or {}


class BadRequest(ApiError):
    pass


class Unauthorized(ApiError):
    status = 401
    type = "authentication_error"


class NotFound(ApiError):
    status = 404
    type = "not_found_error"


class PayloadTooLarge(ApiError):
    status = 413


class Unavailable(ApiError):
    status = 503
    type = "service_unavailable"


#: Status and type of the service layer's own errors (the most specific class first).
_SERVICE_ERRORS: tuple[tuple[type[RagError], int, str], ...] = (
    (StoreUnavailableError, 503, "service_unavailable"),
    (StoreLockedError, 503, "service_unavailable"),
    (EmbedderMismatchError, 409, "conflict_error"),
    (SettingsError, 400, "invalid_request_error"),
)


def error_body(message: str, type_: str, param: str | None = None) -> dict:
    return {"error": {"message": message, "type": type_, "param": param, "code": None}}


def status_of(exc: RagError) -> tuple[int, str, str | None, dict[str, str]]:
    """(status, type, param, headers) of a `RagError`; one the API does not classify is the caller's (400)."""
    if isinstance(exc, ApiError):
        return exc.status, exc.type, exc.param, exc.headers
    for cls, status, type_ in _SERVICE_ERRORS:
        if isinstance(exc, cls):
            return status, type_, None, {}
    return 400, "invalid_request_error", None, {}


def install(app) -> None:
    """Register the handlers: RagError, request validation (400 naming the field) and Starlette's HTTP errors."""
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException

    async def on_rag_error(request, exc: RagError):
        status, type_, param, headers = status_of(exc)
        return JSONResponse(error_body(str(exc), type_, param), status_code=status, headers=headers)

    async def on_invalid_request(request, exc: RequestValidationError):
        message, param = describe_validation(exc.errors())
        return JSONResponse(error_body(message, "invalid_request_error", param), status_code=400)

    async def on_http_error(request, exc: HTTPException):
        type_ = {401: "authentication_error", 404: "not_found_error", 405: "invalid_request_error",
                 413: "invalid_request_error"}.get(exc.status_code, "api_error")
        return JSONResponse(error_body(str(exc.detail), type_), status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    app.add_exception_handler(RagError, on_rag_error)
    app.add_exception_handler(RequestValidationError, on_invalid_request)
    app.add_exception_handler(HTTPException, on_http_error)


_TYPE_TAG = re.compile(r"str|int|float|bool|dict|list|none|[a-z_-]+\[.*\]")


def describe_validation(errors) -> tuple[str, str | None]:
    """The first validation error as (message, param): `messages: Field required`, `body: invalid JSON ...`."""
    errors = list(errors)
    if not errors:
        return "invalid request", None
    first = errors[0]
    # Drop the request part ("body") and pydantic's union-member tags ("str", "list[str]") from the location.
    loc = [str(part) for part in first.get("loc", ())
           if part not in ("body", "query", "path", "header") and not _TYPE_TAG.fullmatch(str(part))]
    if first.get("type") == "json_invalid":
        ctx = first.get("ctx") or {}
        return f"the request body is not valid JSON ({ctx.get('error', 'parse error')})", "body"
    if first.get("type") in {"model_attributes_type", "dict_type"} and not loc:
        return "the request body must be a JSON object", "body"
    param = ".".join(loc) or None
    message = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
    return (f"{param}: {message}{more}" if param else message + more), param

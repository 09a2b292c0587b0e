"""GET /health (the process is up: always 200) and GET /ready (models loaded and the store answers, else 503)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from rag_app.serve.routers import state_of

router = APIRouter(tags=["health"])


@router.get("/health")
def health() -> dict:
    return {"status": "ok"}


@router.get("/ready")
def ready(request: Request):
    status, body = state_of(request).readiness()
    return JSONResponse(body, status_code=status, headers={"Retry-After": "2"} if status == 503 else None)

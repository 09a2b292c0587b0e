"""POST /v1/embeddings: our embedder, OpenAI's request and response shapes (float or base64 vectors)."""

from __future__ import annotations

import base64
from typing import Literal

import numpy as np
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from rag_app.serve.errors import BadRequest
from rag_app.serve.routers import approx_tokens, state_of

router = APIRouter(tags=["embeddings"])
MAX_INPUTS = 2048


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="allow")  # OpenAI clients send fields we ignore (user, ...)

    input: str | list[str] = Field(description="a text or a list of texts (token arrays are not accepted)")
    model: str = ""
    encoding_format: Literal["float", "base64"] = "float"


@router.post("/embeddings")
def create_embeddings(body: EmbeddingRequest, request: Request) -> dict:
    texts = [body.input] if isinstance(body.input, str) else list(body.input)
    if not texts:
        raise BadRequest("input: give a text or a non-empty list of texts", param="input")
    if len(texts) > MAX_INPUTS:
        raise BadRequest(f"input: at most {MAX_INPUTS} texts per request (got {len(texts)})", param="input")
    embedder = state_of(request).rag.embedder
    vectors = np.asarray(embedder.embed(texts), dtype=np.float32)  # (N, dim)
    data = []
    for index, vector in enumerate(vectors):
        if body.encoding_format == "base64":
            value = base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
        else:
            value = vector.tolist()
        data.append({"object": "embedding", "index": index, "embedding": value})
    tokens = sum(approx_tokens(t) for t in texts)
    return {"object": "list", "data": data, "model": embedder.name,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}

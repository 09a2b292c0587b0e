"""POST /v1/retrieve: a question → the ranked chunks the answerer would read (no LM involved)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from rag_app.serve.errors import BadRequest
from rag_app.serve.routers import state_of
from rag_app.services.answer import Source

router = APIRouter(tags=["retrieve"])


class RetrieveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(validation_alias=AliasChoices("query", "question"), description="the question or search text")
    k: int | None = Field(None, ge=1, le=100)
    collection: str | None = Field(None, description="a collection, or rag:<collection>; default: the served one")
    source_glob: str | None = Field(None, description="keep only chunks whose source matches, e.g. papers/*.pdf")


@router.post("/retrieve")
def retrieve(body: RetrieveRequest, request: Request) -> dict:
    if not body.query.strip():
        raise BadRequest("query: the query is empty", param="query")
    state = state_of(request)
    collection = state.resolve(body.collection)
    hits = state.rag.retrieve(body.query, k=body.k, collection=collection, source_glob=body.source_glob)
    data = [{"object": "chunk", "id": hit.id, **Source.from_hit(rank, hit).to_dict()}
            for rank, hit in enumerate(hits, start=1)]
    for row in data:
        row["rank"] = row.pop("n")
        for unused in ("cited", "cited_spans"):
            row.pop(unused, None)
    return {"object": "list", "collection": collection, "query": body.query, "data": data}

"""GET /v1/models and /v1/collections (one model `rag:<name>` per collection), a collection's documents, and
DELETE of one document."""

from __future__ import annotations

from fastapi import APIRouter, Request

from rag_app.serve.errors import NotFound
from rag_app.serve.routers import state_of
from rag_app.serve.state import MODEL_PREFIX

router = APIRouter(tags=["collections"])


def _model(name: str, started: float) -> dict:
    return {"id": MODEL_PREFIX + name, "object": "model", "created": int(started), "owned_by": "rag"}


@router.get("/models")
def list_models(request: Request) -> dict:
    state = state_of(request)
    return {"object": "list", "data": [_model(name, state.started) for name in state.collection_names()]}


@router.get("/models/{model}")
def get_model(model: str, request: Request) -> dict:
    state = state_of(request)
    return _model(state.resolve(model, param="model"), state.started)


@router.get("/collections")
def list_collections(request: Request) -> dict:
    state = state_of(request)
    data = [{"object": "collection", "name": info.name, "model": MODEL_PREFIX + info.name, "chunks": info.count,
             "embedder": info.embedder, "default": info.name == state.collection}
            for info in state.rag.collections()]
    return {"object": "list", "data": data}


@router.get("/collections/{name}/documents")
def list_documents(name: str, request: Request) -> dict:
    state = state_of(request)
    collection = state.resolve(name)
    docs = state.rag.documents(collection)
    return {"object": "list", "collection": collection,
            "data": [{"object": "document", "source": d.source, "path": d.path, "title": d.title,
                      "chunks": d.chunks, "ingested_at": d.ingested_at, "kind": d.kind} for d in docs]}


@router.delete("/collections/{name}/documents/{source:path}")
def delete_document(name: str, source: str, request: Request) -> dict:
    """Delete one document, named by its `source` (as listed) or its stored `path`."""
    state = state_of(request)
    collection = state.resolve(name)
    match = next((d for d in state.rag.documents(collection) if source in (d.source, d.path)), None)
    if match is None:
        raise NotFound(f"no document {source!r} in collection {collection!r}: GET "
                       f"/v1/collections/{collection}/documents lists them", param="source")
    chunks = state.rag.delete_document(match.path, collection=collection)
    return {"object": "document.deleted", "collection": collection, "source": match.source, "deleted": True,
            "chunks": chunks}

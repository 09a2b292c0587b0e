"""What the MCP tools return: typed models, published to clients as each tool's output schema.

The fields follow the HTTP face's (`/v1/retrieve` chunks, the `sources` of a chat completion), plus `location`, the
cited place in words ("page 3", "slide 4", "sheet Q3, rows 2-9"), and for cited sources the sentences the answer
rests on as `quotes`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class Chunk(BaseModel):
    """A retrieved passage, best first."""

    rank: int = Field(description="1 for the best match")
    source: str = Field(description="the file, as ingested (relative to the ingested folder)")
    title: str
    section: str = Field(description="the heading the passage sits under ('' when none)")
    page: int | None = Field(description="PDF page, when known")
    lines: str | None = Field(description="'start-end' lines (rows of a sheet), when known")
    locator: dict[str, Any] = Field(description="where else in the file: slide, sheet, chapter, message, "
                                                "attachment, ocr")
    location: str = Field(description="page / slide / sheet / lines in words")
    score: float = Field(description="retrieval score (higher is better; comparable within one call)")
    text: str
    id: str = Field(description="the chunk's id in the store")


class SearchResult(BaseModel):
    collection: str
    query: str
    chunks: list[Chunk]


class CitedSource(BaseModel):
    """A source of an answer: `[n]` in the answer text is the source numbered `n`."""

    n: int
    cited: bool = Field(description="whether the answer cites it")
    source: str
    title: str
    section: str
    page: int | None
    lines: str | None
    locator: dict[str, Any]
    location: str
    score: float
    text: str
    quotes: list[str] = Field(description="the sentences of `text` the answer rests on ([] when not cited)")


class AskResult(BaseModel):
    answer: str = Field(description="the grounded answer with [n] citations, or a refusal")
    refused: bool = Field(description="true when the documents do not answer the question")
    sources: list[CitedSource]
    collection: str
    standalone_question: str = Field(description="the question as searched (a follow-up made standalone)")
    fallback: bool = Field(description="a generated reply was unsupported and replaced by a quote")


class HistoryTurn(BaseModel):
    """An earlier turn of the conversation, oldest first; a follow-up question is read in its light."""

    role: Literal["user", "assistant"]
    content: str


class CollectionRow(BaseModel):
    name: str
    chunks: int
    embedder: str | None = Field(description="the embedder the collection was built with")
    default: bool = Field(description="the collection tools use when none is named")


class Collections(BaseModel):
    collections: list[CollectionRow]


class DocumentRow(BaseModel):
    source: str = Field(description="the name to cite and to pass to delete_document")
    path: str = Field(description="the file's absolute path when it was ingested")
    title: str
    chunks: int
    ingested_at: str
    kind: str


class Documents(BaseModel):
    collection: str
    documents: list[DocumentRow]


class FileProblem(BaseModel):
    path: str
    error: str


class FileCounts(BaseModel):
    seen: int
    added: int
    updated: int
    unchanged: int
    deleted: int
    failed: int
    skipped: int


class IngestResult(BaseModel):
    collection: str
    files: FileCounts
    failed: list[FileProblem] = Field(description="files that could not be read, with the reason")
    skipped: list[FileProblem] = Field(description="files of a type that is not read, with the reason")
    chunks_written: int
    chunks_deleted: int
    seconds: float


class Deleted(BaseModel):
    collection: str
    source: str
    chunks: int = Field(description="chunks removed from the store")

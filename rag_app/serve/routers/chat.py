"""POST /v1/chat/completions: OpenAI's chat shapes over `RAG.ask` / `RAG.stream`.

The last user message is the question; the turns before it are the history (a follow-up is rewritten into a
standalone question, as `rag chat` does). `model` is `rag:<collection>`. The reply keeps its `[n]` citations; the
numbered sources travel in an extra top-level `sources` field (in the final chunk when streaming), with `refused`
saying whether the documents answered at all.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
import uuid
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from rag_app.serve.errors import BadRequest, error_body, status_of
from rag_app.serve.routers import approx_tokens, state_of

router = APIRouter(tags=["chat"])


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="allow")  # temperature, max_tokens, ... are accepted and not used

    model: str = Field("", description="rag:<collection> (GET /v1/models); empty: the served collection")
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    k: int | None = Field(None, ge=1, le=100, description="chunks to retrieve (an extension)")


def text_of(message: ChatMessage) -> str:
    """A message's text: a string, or the text parts of a content list."""
    if isinstance(message.content, str):
        return message.content
    parts = message.content or []
    return "".join(str(p.get("text", "")) for p in parts if p.get("type") in ("text", "input_text"))


def split_conversation(messages: list[ChatMessage]) -> tuple[str, list[dict]]:
    """(question, history): the last user message and the user/assistant turns before it (`RAG.standalone_turns`
    then gives each earlier user turn its standalone form, as `rag chat` records it).

    Raises:
        BadRequest: there is no user message, or it has no text.
    """
    last = next((i for i in range(len(messages) - 1, -1, -1) if messages[i].role == "user"), None)
    if last is None:
        raise BadRequest("messages: there is no user message (its text is the question)", param="messages")
    question = text_of(messages[last]).strip()
    if not question:
        raise BadRequest(f"messages.{last}.content: the question is empty", param=f"messages.{last}.content")
    history = [{"role": m.role, "content": text_of(m)} for m in messages[:last] if m.role in ("user", "assistant")]
    return question, history


def _norm(text: str) -> str:
    return re.sub(r"\W+", " ", text.lower()).strip()


class _Reply:
    """One completion's id, model and the pieces that make its OpenAI-shaped bodies."""

    def __init__(self, model: str, question: str, history: list[dict]):
        self.id = "chatcmpl-" + uuid.uuid4().hex
        self.created = int(time.time())
        self.model = model
        self.prompt_text = question + " ".join(t["content"] for t in history)

    def usage(self, answer) -> dict[str, int]:
        prompt = approx_tokens(self.prompt_text) + sum(approx_tokens(s.text) for s in answer.sources)
        completion = approx_tokens(answer.text)
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

    @staticmethod
    def extras(answer) -> dict[str, Any]:
        return {"sources": [s.to_dict() for s in answer.sources], "refused": answer.refused,
                "standalone_question": answer.standalone_question, "fallback": answer.fallback}

    def completion(self, answer) -> dict[str, Any]:
        return {"id": self.id, "object": "chat.completion", "created": self.created, "model": self.model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": answer.text},
                             "finish_reason": "stop", "logprobs": None}],
                "usage": self.usage(answer), **self.extras(answer)}

    def chunk(self, delta: dict, finish: str | None = None, **extra) -> str:
        body = {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}], **extra}
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"


@router.post("/chat/completions")
async def chat_completions(body: ChatRequest, request: Request):
    state = state_of(request)
    question, history = split_conversation(body.messages)
    history = state.rag.standalone_turns(history)
    collection = await run_in_threadpool(state.resolve, body.model, param="model")
    reply = _Reply(body.model or f"rag:{collection}", question, history)
    if not body.stream:
        answer = await asyncio.get_running_loop().run_in_executor(
            state.answer_pool, lambda: state.rag.ask(question, history, collection=collection, k=body.k))
        return reply.completion(answer)
    pieces = _stream_on_a_thread(state.answer_pool,
                                 lambda: state.rag.stream(question, history, collection=collection, k=body.k))
    first = await anext(pieces)  # an error before the first piece (e.g. the store is down) is a plain HTTP error
    return StreamingResponse(_sse(reply, first, pieces), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def _stream_on_a_thread(pool, start):
    """Run `start()`'s generator to the end on one thread of `pool` and yield its items here.

    One thread for the whole answer: the LM's lock is taken and released by the same thread, whatever thread the
    event loop resumes this generator on. Closing this generator (a client that hangs up) stops the answer at its next piece.
    Raises what the generator raised.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    stop = threading.Event()

    def produce() -> None:
        generator = None
        try:
            if stop.is_set():  # the client left while this answer waited for a thread
                return
            generator = start()
            for item in generator:
                loop.call_soon_threadsafe(queue.put_nowait, ("item", item))
                if stop.is_set():
                    break
        except BaseException as exc:  # noqa: BLE001 - handed to the request, which reports it
            loop.call_soon_threadsafe(queue.put_nowait, ("error", exc))
        finally:
            if generator is not None:
                generator.close()
            try:
                loop.call_soon_threadsafe(queue.put_nowait, ("end", None))
            except RuntimeError:  # the loop is closed: the server is shutting down
                pass

    pool.submit(produce)
    try:
        while True:
            kind, item = await queue.get()
            if kind == "end":
                return
            if kind == "error":
                raise item
            yield item
    finally:
        stop.set()


async def _sse(reply: _Reply, first, pieces):
    """The server-sent events of one streamed completion, ending with the sources chunk and `data: [DONE]`."""
    from rag_app.errors import RagError
    from rag_app.services.answer import Answer

    yield reply.chunk({"role": "assistant", "content": ""})
    streamed: list[str] = []
    try:
        item = first
        while True:
            if isinstance(item, Answer):
                final = item.text.strip()
                if final and _norm(final) not in _norm("".join(streamed)):
                    # The grounding check replaced what was streamed: say so, and send the supported text.
                    yield reply.chunk({"content": "\n\n(corrected to what the sources support)\n" + item.text})
                yield reply.chunk({}, "stop", usage=reply.usage(item), answer=item.text, **reply.extras(item))
                break
            streamed.append(item)
            yield reply.chunk({"content": item})
            item = await anext(pieces)
    except RagError as exc:
        _, type_, param, _ = status_of(exc)
        yield f"data: {json.dumps(error_body(str(exc), type_, param))}\n\n"
    except StopAsyncIteration:
        pass
    finally:
        await pieces.aclose()
    yield "data: [DONE]\n\n"

"""Plain-HTTP calls to an OpenAI-compatible server (stdlib only), shared by the `openai` LM and embedder backends.

Every failure a user can meet becomes a `RagError` that names the server's URL and the fix:

- the server is down (connection refused, unknown host): "unreachable ... start it, or fix RAG_<SECTION>__BASE_URL";
- it accepts the connection but does not answer in time: "did not answer within N s ... RAG_<SECTION>__TIMEOUT_S";
- it answers an HTTP error: when `GET {base}/models` lists models and ours is not among them, the message says so
  and lists the ones it serves (servers word this differently: vLLM 404, transformers serve 400 "pinned to ...");
  otherwise the status and the start of the server's own message;
- it drops the connection in the middle of a streamed reply.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

from rag_app.errors import RagError


class OpenAIServer:
    """One OpenAI-compatible server: its base URL (with or without the trailing `/v1`), key, timeout and model.

    Args:
        base_url: e.g. `http://127.0.0.1:8000/v1` (a URL without `/v1` gets it added).
        model: the model name sent with each request (the server's own name for it).
        api_key: sent as a bearer token when set.
        timeout_s: limit for connecting and for each read of the answer.
        section: the settings section ("llm", "embedder"), for the variable names in error messages.
        what: how messages name the server ("LM server", "embedding server").
    """

    def __init__(self, base_url: str, model: str, *, api_key: str | None = None, timeout_s: float = 120.0,
                 section: str = "llm", what: str = "server"):
        base = base_url.rstrip("/")
        self.base_url = base if base.endswith("/v1") else base + "/v1"
        self.model = model
        self.api_key = api_key
        self.timeout_s = timeout_s
        self.section = section
        self.what = what

    def _env(self, key: str) -> str:
        return f"RAG_{self.section.upper()}__{key.upper()}"

    def _headers(self, accept: str = "application/json") -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": accept}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers

    def open(self, path: str, body: dict | None = None, *, accept: str = "application/json",
             timeout_s: float | None = None):
        """POST `body` as JSON to `{base}{path}` (GET when `body` is None); the open response, or a `RagError`."""
        import urllib.error
        import urllib.request

        url = self.base_url + path
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(url, data=data, headers=self._headers(accept),
                                         method="POST" if body is not None else "GET")
        try:
            return urllib.request.urlopen(request, timeout=timeout_s or self.timeout_s)  # noqa: S310 - user's URL
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace").strip()[:300]
            raise self._http_error(exc.code, detail) from exc
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, (TimeoutError, socket.timeout)):
                raise self.timeout_error() from exc
            raise self.unreachable_error(exc.reason) from exc
        except (TimeoutError, socket.timeout) as exc:
            raise self.timeout_error() from exc
        except OSError as exc:  # a reset or refused connection outside urllib's wrapping
            raise self.unreachable_error(exc) from exc

    def post_json(self, path: str, body: dict) -> dict:
        """POST and read a JSON answer."""
        with self.open(path, body) as response:
            raw = self._read(response)
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise RagError(f"the {self.what} at {self.base_url} answered {path} with something that is not JSON: "
                           f"{raw[:200]!r}") from exc

    def _read(self, response) -> bytes:
        try:
            return response.read()
        except (TimeoutError, socket.timeout) as exc:
            raise self.timeout_error() from exc
        except OSError as exc:
            raise self.dropped_error(exc) from exc

    def sse(self, path: str, body: dict) -> Iterator[dict]:
        """POST a streaming request and yield the JSON payload of each `data:` event until `[DONE]`.

        Raises `RagError` when the connection drops, or the stream ends without `[DONE]` or a `finish_reason`.
        """
        import http.client

        with self.open(path, body, accept="text/event-stream") as response:
            finished = False
            try:
                for raw in response:
                    line = raw.decode("utf-8", errors="replace").strip()
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        return
                    try:
                        event = json.loads(data)
                    except ValueError:
                        continue
                    if isinstance(event, dict) and "error" in event and not event.get("choices"):
                        raise RagError(f"the {self.what} at {self.base_url} failed mid-answer: "
                                       f"{str(event['error'])[:300]}")
                    choices = (event.get("choices") or [{}]) if isinstance(event, dict) else [{}]
                    finished = finished or bool(choices and (choices[0] or {}).get("finish_reason"))
                    yield event
            except (TimeoutError, socket.timeout) as exc:
                raise self.timeout_error() from exc
            except (OSError, http.client.HTTPException) as exc:
                raise self.dropped_error(exc) from exc
            if not finished:
                raise self.dropped_error("the stream ended before the reply was finished")

    def served_models(self) -> list[str] | None:
        """The model ids `GET {base}/models` lists, or None when the server does not say."""
        try:
            with self.open("/models", timeout_s=min(self.timeout_s, 10.0)) as response:
                listing = json.loads(response.read())
            return [str(m["id"]) for m in listing.get("data", []) if isinstance(m, dict) and "id" in m]
        except (RagError, ValueError, KeyError, TypeError, AttributeError, OSError):
            return None

    # -- messages ------------------------------------------------------------------------------------------------------
    def _http_error(self, status: int, detail: str) -> RagError:
        if status in (401, 403):
            return RagError(f"the {self.what} at {self.base_url} refused the request (HTTP {status}: {detail}): "
                            f"set {self._env('api_key')} to a key it accepts")
        if 400 <= status < 500:
            models = self.served_models()
            if models is not None and self.model not in models:
                listed = ", ".join(repr(m) for m in models[:10]) or "none"
                return RagError(f"the {self.what} at {self.base_url} does not serve model {self.model!r} (it serves "
                                f"{listed}): set {self._env('model')} to one of them")
        return RagError(f"the {self.what} at {self.base_url} answered HTTP {status}: {detail}")

    def unreachable_error(self, reason) -> RagError:
        return RagError(f"the {self.what} at {self.base_url} is unreachable ({reason}): start it, or fix "
                        f"{self._env('base_url')}")

    def timeout_error(self) -> RagError:
        return RagError(f"the {self.what} at {self.base_url} did not answer within {self.timeout_s:g} s: check that "
                        f"it is not overloaded, or raise {self._env('timeout_s')}")

    def dropped_error(self, reason) -> RagError:
        return RagError(f"the {self.what} at {self.base_url} dropped the connection mid-answer ({reason}): check "
                        "the server (did it stop?) and ask again")

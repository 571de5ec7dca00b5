"""Ollama's native `/api/chat` (NDJSON) as a Provider.

httpx's API over aiohttp's transport (httpx-aiohttp): the same client shape
as the SDKs use, at a fraction of the default transport's cost per piece.
Every line is checked for an `error` key, because Ollama reports a failure
mid-stream as a last `{"error": "..."}` line while the status stays 200.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

import httpx
import orjson
from httpx_aiohttp import AiohttpTransport

from app.core.events import FinishReason, Usage
from app.errors import UpstreamError
from app.providers.base import ChatRequest, Chunk
from app.providers.edge import CONNECT_TIMEOUT_S, TRANSPORT_ERRORS, status_error, transport_error
from app.providers.openai_chunks import parse_json
from app.providers.sse_decode import NDJSONDecoder

DEFAULT_HOST = "http://127.0.0.1:11434"
_OPTIONS = ("top_p", "top_k", "seed", "stop", "presence_penalty", "frequency_penalty")
_MAX_ERROR_BODY = 64 * 1024
_DONE: dict[str, FinishReason] = {"stop": "stop", "length": "length"}


def host_url(host: str | None) -> str:
    """OLLAMA_HOST as Ollama itself accepts it: a bare `host:port` means http."""
    host = (host or "").strip() or DEFAULT_HOST
    return host if "://" in host else f"http://{host}"


def request_body(request: ChatRequest, model: str) -> dict[str, object]:
    options: dict[str, object] = {}
    if request.max_tokens is not None:
        options["num_predict"] = request.max_tokens
    if request.temperature is not None:
        options["temperature"] = request.temperature
    for key in _OPTIONS:
        value = request.option(key)
        if value is not None:
            options[key] = [value] if key == "stop" and isinstance(value, str) else value
    body: dict[str, object] = {
        "model": model,
        "messages": [{"role": m.role, "content": m.content} for m in request.messages],
        "stream": True,
    }
    if options:
        body["options"] = options
    return body


class ChatLineParser:
    """One `/api/chat` NDJSON line at a time -> text chunk, final chunk, or error."""

    __slots__ = ("done", "provider")

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self.done = False

    def feed(self, line: bytes) -> list[Chunk]:
        obj = parse_json(line, self.provider)
        error = obj.get("error")
        if error is not None:
            raise UpstreamError(f"{self.provider}: {error}", retryable=True)
        message = obj.get("message")
        text = message.get("content") if isinstance(message, dict) else None
        chunks = [Chunk(text=text)] if isinstance(text, str) and text else []
        if obj.get("done") is True:
            self.done = True
            chunks.append(self._final(obj))
        return chunks

    @staticmethod
    def _final(obj: dict[str, object]) -> Chunk:
        reason = obj.get("done_reason")
        prompt, evals = obj.get("prompt_eval_count"), obj.get("eval_count")
        # The counts are omitted when zero (Go's omitempty).
        usage = Usage(
            input_tokens=prompt if isinstance(prompt, int) else 0,
            output_tokens=evals if isinstance(evals, int) else 0,
        )
        finish = _DONE.get(reason, "stop") if isinstance(reason, str) else "stop"
        return Chunk(finish_reason=finish, usage=usage)

    def check_complete(self) -> None:
        if not self.done:
            raise UpstreamError(f"{self.provider}: stream ended before done:true", retryable=True)


class OllamaProvider:
    accepts = frozenset((*_OPTIONS, "user"))  # `user` does not change the answer

    def __init__(self, name: str = "ollama", *, host: str | None = None) -> None:
        self.name = name
        self._client = httpx.AsyncClient(
            base_url=host_url(host),
            transport=AiohttpTransport(),
            timeout=httpx.Timeout(None, connect=CONNECT_TIMEOUT_S),
        )

    async def stream(self, request: ChatRequest, model: str) -> AsyncIterator[Chunk]:
        decoder = NDJSONDecoder()
        parser = ChatLineParser(self.name)
        content = orjson.dumps(request_body(request, model))
        headers = {"content-type": "application/json"}
        with self._translated():
            async with self._client.stream(
                "POST", "/api/chat", content=content, headers=headers
            ) as response:
                if response.status_code >= 400:
                    raise await self._status_error(response)
                async for piece in response.aiter_bytes():
                    for line in decoder.feed(piece):
                        for chunk in parser.feed(line):
                            yield chunk
                        if parser.done:
                            return
                for line in decoder.flush():
                    for chunk in parser.feed(line):
                        yield chunk
        parser.check_complete()

    async def _status_error(self, response: httpx.Response) -> UpstreamError:
        body = b""
        async for piece in response.aiter_bytes():
            body += piece
            if len(body) > _MAX_ERROR_BODY:
                break
        message: str | None = None
        try:
            obj = orjson.loads(body)
        except orjson.JSONDecodeError:
            message = body[:500].decode("utf-8", "replace") or None
        else:
            if isinstance(obj, dict) and obj.get("error") is not None:
                message = str(obj["error"])
        return status_error(self.name, response.status_code, message, response.headers)

    @contextmanager
    def _translated(self) -> Iterator[None]:
        try:
            yield
        except TRANSPORT_ERRORS as exc:
            raise transport_error(exc, self.name) from exc

    async def aclose(self) -> None:
        await self._client.aclose()

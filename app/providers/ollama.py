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

from app.core.events import FinishReason, ToolCall, Usage
from app.errors import UpstreamError
from app.providers.arguments import arguments_object
from app.providers.base import JSON_FEATURES, ChatRequest, Chunk, Message
from app.providers.edge import CONNECT_TIMEOUT_S, TRANSPORT_ERRORS, status_error, transport_error
from app.providers.openai_chunks import parse_json
from app.providers.openai_request import tool_body
from app.providers.sse_decode import NDJSONDecoder

DEFAULT_HOST = "http://127.0.0.1:11434"
_OPTIONS = ("top_p", "top_k", "seed", "stop", "presence_penalty", "frequency_penalty")
_MAX_ERROR_BODY = 64 * 1024
_DONE: dict[str, FinishReason] = {"stop": "stop", "length": "length"}


def host_url(host: str | None) -> str:
    """OLLAMA_HOST as Ollama itself accepts it: a bare `host:port` means http."""
    host = (host or "").strip() or DEFAULT_HOST
    return host if "://" in host else f"http://{host}"


# OpenAI's reasoning_effort as Ollama's think levels.
_THINK = {"none": False, "minimal": "low", "low": "low", "medium": "medium", "high": "high"}


def _message(message: Message, names: dict[str, str]) -> dict[str, object]:
    body: dict[str, object] = {"role": message.role, "content": message.content}
    if message.images:  # Ollama takes base64 only: URLs were refused before
        body["images"] = [url.partition(",")[2] for url in message.images]
    if message.tool_calls:
        body["tool_calls"] = [
            {"function": {"name": c.name, "arguments": arguments_object(c.arguments, "tool_calls")}}
            for c in message.tool_calls
        ]
    if message.tool_call_id is not None:
        body["tool_name"] = message.name or names.get(message.tool_call_id, "")
    return body


def _extras(request: ChatRequest, body: dict[str, object]) -> None:
    if request.tools:
        body["tools"] = [tool_body(t) for t in request.tools]
    fmt = request.response_format
    if fmt is not None:
        schema = fmt.json_schema.get("schema") if fmt.json_schema is not None else None
        body["format"] = schema if schema is not None else "json"
    reasoning = request.reasoning
    if reasoning is not None and reasoning.think is not None:
        body["think"] = reasoning.think
    elif reasoning is not None and reasoning.effort is not None:
        body["think"] = _THINK.get(reasoning.effort, "high")


def request_body(request: ChatRequest, model: str) -> dict[str, object]:
    names = {c.id: c.name for m in request.messages for c in m.tool_calls}
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
        "messages": [_message(m, names) for m in request.messages],
        "stream": True,
    }
    _extras(request, body)
    if options:
        body["options"] = options
    return body


class ChatLineParser:
    """One `/api/chat` NDJSON line at a time -> its deltas, final chunk, or error.

    `message.thinking` is reasoning; `message.tool_calls` come whole, each one
    line's call with `arguments` as a JSON object: a call's start, then its
    arguments serialized as one fragment. Ollama says `done_reason: "stop"`
    after tool calls; the finish reason is then `tool_calls`, as Ollama's own
    OpenAI-compatible endpoint reports it."""

    __slots__ = ("calls", "done", "provider")

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self.done = False
        self.calls = 0

    def feed(self, line: bytes) -> list[Chunk]:
        obj = parse_json(line, self.provider)
        error = obj.get("error")
        if error is not None:
            raise UpstreamError(f"{self.provider}: {error}", retryable=True)
        message = obj.get("message")
        chunks: list[Chunk] = []
        if isinstance(message, dict):
            thinking = message.get("thinking")
            if isinstance(thinking, str) and thinking:
                chunks.append(Chunk(thinking, kind="reasoning"))
            text = message.get("content")
            if isinstance(text, str) and text:
                chunks.append(Chunk(text=text))
            calls = message.get("tool_calls")
            if isinstance(calls, list):
                for call in calls:
                    if isinstance(call, dict):
                        chunks += self._call(call)
        if obj.get("done") is True:
            self.done = True
            chunks.append(self._final(obj))
        return chunks

    def _call(self, call: dict[str, object]) -> list[Chunk]:
        index = self.calls
        self.calls += 1
        function = call.get("function")
        function = function if isinstance(function, dict) else {}
        call_id, name = call.get("id"), function.get("name")
        start = ToolCall(
            index,
            call_id if isinstance(call_id, str) and call_id else f"call_{index}",
            name if isinstance(name, str) else "",
        )
        arguments = function.get("arguments", {})
        text = arguments if isinstance(arguments, str) else orjson.dumps(arguments).decode()
        return [
            Chunk(kind="tool_call", call=start),
            Chunk(text, kind="tool_call_delta", call_index=index),
        ]

    def _final(self, obj: dict[str, object]) -> Chunk:
        reason = obj.get("done_reason")
        prompt, evals = obj.get("prompt_eval_count"), obj.get("eval_count")
        # The counts are omitted when zero (Go's omitempty).
        usage = Usage(
            input_tokens=prompt if isinstance(prompt, int) else 0,
            output_tokens=evals if isinstance(evals, int) else 0,
        )
        finish = _DONE.get(reason, "stop") if isinstance(reason, str) else "stop"
        if finish == "stop" and self.calls:
            finish = "tool_calls"
        return Chunk(finish_reason=finish, usage=usage)

    def check_complete(self) -> None:
        if not self.done:
            raise UpstreamError(f"{self.provider}: stream ended before done:true", retryable=True)


class OllamaProvider:
    # `user` does not change the answer. Ollama has no tool_choice, cannot
    # forbid parallel calls and fetches no image URL: those are refused.
    accepts = frozenset(
        (*_OPTIONS, "user", "tools", "images", "think", "reasoning_effort", *JSON_FEATURES)
    )

    @staticmethod
    def check(request: ChatRequest) -> None:
        for i, message in enumerate(request.messages):
            for j, call in enumerate(message.tool_calls):
                arguments_object(
                    call.arguments, f"messages[{i}].tool_calls[{j}].function.arguments"
                )

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

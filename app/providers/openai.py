"""OpenAI Chat Completions, and every OpenAI-compatible server, as a Provider.

The official SDK does what it is good at (the request, base URL, auth
headers, typed HTTP errors) over its aiohttp transport; the body is read raw
through `with_streaming_response` and parsed by the pure decoders, because an
SDK model object per token costs ~30x more (shared/PERFORMANCE.md).
Leaving the `async with` closes the HTTP response on every exit, including
`aclose()`/cancellation of the iterator mid-stream.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import cast

import httpx2
import openai
from openai.types.chat import ChatCompletionMessageParam

from app.errors import UpstreamError
from app.providers.base import ChatRequest, Chunk
from app.providers.edge import CONNECT_TIMEOUT_S, TRANSPORT_ERRORS, status_error, transport_error
from app.providers.openai_chunks import ChatChunkParser
from app.providers.sse_decode import SSEDecoder

# Request options passed through when the client set them: they change the answer.
PASSTHROUGH = ("top_p", "stop", "seed", "presence_penalty", "frequency_penalty", "user")
NO_KEY = "sluice-no-key"  # local servers ignore the key, but the SDK wants one


class OpenAIProvider:
    accepts = frozenset(PASSTHROUGH)
    """`max_tokens_field`: api.openai.com wants `max_completion_tokens` (its
    reasoning models reject `max_tokens`); compatible servers mostly know
    only `max_tokens`."""

    def __init__(
        self,
        name: str,
        *,
        api_key: str | None,
        base_url: str | None = None,
        max_tokens_field: str = "max_tokens",
        max_retries: int = 0,
    ) -> None:
        self.name = name
        self._missing_key = api_key is None
        self._max_tokens_field = max_tokens_field
        timeout = httpx2.Timeout(None, connect=CONNECT_TIMEOUT_S)
        self._client = openai.AsyncOpenAI(
            api_key=api_key or NO_KEY,
            base_url=base_url,
            # Strategy: no SDK retries. Before the first token, retrying is the
            # fallback layer's job (it knows the other targets and the deadline).
            max_retries=max_retries,
            timeout=timeout,
            http_client=openai.DefaultAioHttpClient(timeout=timeout),
        )

    def _body(self, request: ChatRequest) -> dict[str, object]:
        extra: dict[str, object] = {"stream_options": {"include_usage": True}}
        if request.max_tokens is not None:
            extra[self._max_tokens_field] = request.max_tokens
        if request.temperature is not None:
            extra["temperature"] = request.temperature
        for key in PASSTHROUGH:
            value = request.option(key)
            if value is not None:
                extra[key] = value
        return extra

    async def stream(self, request: ChatRequest, model: str) -> AsyncIterator[Chunk]:
        if self._missing_key:
            raise UpstreamError(f"{self.name}: no API key configured", code="missing_api_key")
        messages = cast(
            "list[ChatCompletionMessageParam]",
            [{"role": m.role, "content": m.content} for m in request.messages],
        )
        decoder = SSEDecoder()
        parser = ChatChunkParser(self.name)
        with self._translated():
            async with self._client.chat.completions.with_streaming_response.create(
                model=model, messages=messages, stream=True, extra_body=self._body(request)
            ) as response:
                async for piece in response.iter_bytes():
                    for event in decoder.feed(piece):
                        chunk = parser.feed(event.data)
                        if chunk is not None:
                            yield chunk
                        if parser.done:
                            break
                    if parser.done:
                        break
        yield parser.finish()

    @contextmanager
    def _translated(self) -> Iterator[None]:
        try:
            yield
        except openai.APIStatusError as exc:
            raise self._status_error(exc) from exc
        except openai.APIConnectionError as exc:
            raise transport_error(exc, self.name) from exc
        except TRANSPORT_ERRORS as exc:
            raise transport_error(exc, self.name) from exc

    def _status_error(self, exc: openai.APIStatusError) -> UpstreamError:
        body = exc.body if isinstance(exc.body, dict) else {}
        if isinstance(body.get("error"), dict):  # compatible servers may not unwrap
            body = body["error"]
        message = body.get("message")
        error = status_error(
            self.name, exc.status_code, str(message) if message else None, exc.response.headers
        )
        if exc.status_code == 429 and "insufficient_quota" in (body.get("code"), body.get("type")):
            # Same status as a rate limit, but waiting does not refill a quota.
            return UpstreamError(error.message, retryable=False, code="insufficient_quota")
        return error

    async def aclose(self) -> None:
        await self._client.close()

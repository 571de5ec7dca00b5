"""Anthropic Messages as a Provider.

The official SDK makes the request (auth headers, base URL, typed HTTP
errors) over its aiohttp transport. Strategy: the body is read raw through
`with_streaming_response` and parsed by the pure decoders instead of through
`messages.stream()`: that helper builds SDK event models and re-accumulates a
message snapshot for every delta, several times the cost per token of the raw
path (measured; see the providers section of the README). Its semantics are
kept: usage is the cumulative count from `message_delta`, exactly what
`get_final_message()` reports; a stream without `message_stop` is an error;
and leaving the `async with` closes the response on every exit.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import cast

import anthropic
import httpx2
from anthropic.types import MessageParam

from app.errors import UpstreamError
from app.providers import anthropic_request
from app.providers.anthropic_events import MessageEventParser
from app.providers.base import IMAGE_FEATURES, TOOL_FEATURES, ChatRequest, Chunk
from app.providers.edge import CONNECT_TIMEOUT_S, TRANSPORT_ERRORS, status_error, transport_error
from app.providers.sse_decode import SSEDecoder


class AnthropicProvider:
    # `user` does not change the answer; the rest have no Anthropic equivalent.
    accepts = frozenset(("top_p", "top_k", "stop", "user", "reasoning_effort", "thinking")) | (
        TOOL_FEATURES | IMAGE_FEATURES
    )

    def __init__(
        self,
        name: str = "anthropic",
        *,
        api_key: str | None,
        base_url: str | None = None,
        max_retries: int = 0,
    ) -> None:
        self.name = name
        self._missing_key = api_key is None
        timeout = httpx2.Timeout(None, connect=CONNECT_TIMEOUT_S)
        self._client = anthropic.AsyncAnthropic(
            api_key=api_key or "sluice-no-key",
            base_url=base_url,
            # Before the first token, retrying is the fallback layer's job.
            max_retries=max_retries,
            timeout=timeout,
            http_client=anthropic.DefaultAioHttpClient(timeout=timeout),
        )

    @staticmethod
    def check(request: ChatRequest) -> None:
        anthropic_request.check(request)

    async def stream(self, request: ChatRequest, model: str) -> AsyncIterator[Chunk]:
        if self._missing_key:
            raise UpstreamError(f"{self.name}: no API key configured", code="missing_api_key")
        messages = cast("list[MessageParam]", anthropic_request.messages(request))
        decoder = SSEDecoder()
        parser = MessageEventParser(self.name)
        with self._translated():
            async with self._client.messages.with_streaming_response.create(
                model=model,
                max_tokens=anthropic_request.max_tokens(request),
                messages=messages,
                stream=True,
                extra_body=anthropic_request.extra_body(request),
            ) as response:
                async for piece in response.iter_bytes():
                    for event in decoder.feed(piece):
                        chunk = parser.feed(event)
                        if chunk is not None:
                            yield chunk
                        if parser.done:
                            return
        parser.check_complete()

    @contextmanager
    def _translated(self) -> Iterator[None]:
        try:
            yield
        except anthropic.APIStatusError as exc:
            raise self._status_error(exc) from exc
        except anthropic.APIConnectionError as exc:
            raise transport_error(exc, self.name) from exc
        except TRANSPORT_ERRORS as exc:
            raise transport_error(exc, self.name) from exc

    def _status_error(self, exc: anthropic.APIStatusError) -> UpstreamError:
        body = exc.body if isinstance(exc.body, dict) else {}
        inner = body.get("error")
        message = inner.get("message") if isinstance(inner, dict) else None
        return status_error(
            self.name, exc.status_code, str(message) if message else None, exc.response.headers
        )

    async def aclose(self) -> None:
        await self._client.close()

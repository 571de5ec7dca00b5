"""Reading SSE responses over real HTTP in tests."""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx

from tests.support.sse_parser import SSEEvent, SSEParser


@dataclass
class SSEResponse:
    status: int
    headers: httpx.Headers
    raw: bytes = b""
    parser: SSEParser = field(default_factory=SSEParser)

    @property
    def events(self) -> list[SSEEvent]:
        return self.parser.events

    @property
    def tokens(self) -> list[SSEEvent]:
        return [e for e in self.events if e.event == "token"]

    @property
    def terminal(self) -> SSEEvent | None:
        last = self.events[-1] if self.events else None
        return last if last is not None and last.event in ("done", "error") else None


async def read_sse(
    client: httpx.AsyncClient,
    url: str,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    json: object = None,
    stop_after: int | None = None,
) -> SSEResponse:
    """Read an SSE response to its end, or close it after `stop_after` events."""
    async with client.stream(method, url, headers=headers, json=json) as response:
        result = SSEResponse(response.status_code, response.headers)
        if stop_after == 0:
            return result
        async for chunk in response.aiter_raw():
            result.raw += chunk
            result.parser.feed(chunk)
            if stop_after is not None and len(result.events) >= stop_after:
                break
    return result


def transcript(events: list[SSEEvent]) -> str:
    """The text of the token events, joined."""
    import json as json_

    return "".join(json_.loads(e.data)["text"] for e in events if e.event == "token")


async def create_lorem_stream(client: httpx.AsyncClient, url: str, tokens: int, tps: float) -> str:
    """POST /v1/streams for `tokens` lorem tokens at `tps`; the new stream's id."""
    body = {
        "model": "sim/lorem",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": tokens,
        "sim": {"tps": tps},
    }
    response = await client.post(f"{url}/v1/streams", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])

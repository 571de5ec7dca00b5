"""Request size and shape limits: 413 while reading, 400 naming the cap."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import httpx
import pytest

from tests.security.helpers import KEY_A, bearer, keyed_server

TEN_MB = 10 * 1024 * 1024


async def _raw(url: str, head: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    writer.write(head.encode())
    await writer.drain()
    return reader, writer


def _head(path: str, framing: str) -> str:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {KEY_A}\r\n"
        f"Content-Type: application/json\r\n{framing}\r\n\r\n"
    )


async def _status(reader: asyncio.StreamReader) -> int:
    async with asyncio.timeout(10):
        line = await reader.readline()
    return int(line.split()[1])


@pytest.mark.parametrize("path", ["/v1/streams", "/v1/chat/completions"])
async def test_a_declared_10mb_body_is_refused_before_a_byte_of_it_is_sent(path: str) -> None:
    async with keyed_server() as server:
        reader, writer = await _raw(server.url, _head(path, f"Content-Length: {TEN_MB}"))
        assert await _status(reader) == 413
        writer.close()


@pytest.mark.parametrize("path", ["/v1/streams", "/v1/chat/completions"])
async def test_a_chunked_body_is_refused_once_past_the_limit_not_when_it_ends(path: str) -> None:
    async with keyed_server(max_body_bytes=1_048_576) as server:
        reader, writer = await _raw(server.url, _head(path, "Transfer-Encoding: chunked"))
        piece = b"[" * 65536
        sent = 0
        status_task = asyncio.create_task(_status(reader))
        while not status_task.done() and sent < TEN_MB:
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            try:
                await writer.drain()
            except ConnectionError:
                break  # answered and closed: the server stopped reading
            sent += len(piece)
            await asyncio.sleep(0)
        assert await status_task == 413
        assert sent < TEN_MB  # refused mid-body: the 10 MB were never all sent
        writer.close()


async def test_a_body_at_the_limit_is_read() -> None:
    async with keyed_server(max_body_bytes=200) as server, httpx.AsyncClient() as client:
        body = b'{"model": "sim/echo", "messages": [{"role": "user", "content": "hi"}]}'
        padded = body + b" " * (200 - len(body))
        response = await client.post(
            f"{server.url}/v1/streams", content=padded, headers=bearer(KEY_A)
        )
        assert response.status_code == 201
        over = await client.post(
            f"{server.url}/v1/streams", content=padded + b" ", headers=bearer(KEY_A)
        )
        assert over.status_code == 413
        assert over.json()["error"]["type"] == "invalid_request"


CAPS = [
    ({"max_tokens": 101}, "max_tokens", "the cap is 100"),
    ({"messages": [{"role": "user", "content": "x"}] * 4}, "messages", "the cap is 3"),
    ({"messages": [{"role": "user", "content": "x" * 51}]}, "messages", "the cap is 50"),
]


@pytest.mark.parametrize(("extra", "param", "says"), CAPS)
@pytest.mark.parametrize("path", ["/v1/streams", "/v1/chat/completions"])
async def test_caps_are_400_naming_the_cap(
    path: str, extra: dict[str, object], param: str, says: str
) -> None:
    caps = {"max_tokens_cap": 100, "max_messages": 3, "max_total_chars": 50}
    async with keyed_server(**caps) as server, httpx.AsyncClient() as client:
        body = {"model": "sim/echo", "messages": [{"role": "user", "content": "x"}], **extra}
        response = await client.post(server.url + path, json=body, headers=bearer(KEY_A))
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["param"] == param
        assert says in error["message"]


async def test_the_one_shot_prompt_is_capped_too() -> None:
    async with keyed_server(max_total_chars=50) as server, httpx.AsyncClient() as client:
        response = await client.get(
            f"{server.url}/v1/stream",
            params={"model": "sim/echo", "prompt": "x" * 51},
            headers=bearer(KEY_A),
        )
        assert response.status_code == 400
        assert "the cap is 50" in response.json()["error"]["message"]

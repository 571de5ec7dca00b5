"""One suite, every provider: each adapter against a real loopback server that
replays the upstream's recorded bytes, cut in awkward places."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from app.errors import UpstreamError, UpstreamRateLimited, UpstreamTimeout
from app.providers.base import Chunk, Provider
from tests.providers.kinds import KIND_IDS, KINDS, Case, Kind, chat_request
from tests.support.fake_upstreams import SPLITTERS, FakeUpstream, Reply, bytewise, fixture

CASES = [(kind, case) for kind in KINDS for case in kind.cases]
CASE_IDS = [case.fixture.rsplit(".", 1)[0] for _, case in CASES]


async def collect(provider: Provider, model: str, into: list[Chunk] | None = None) -> list[Chunk]:
    chunks = [] if into is None else into
    async for chunk in provider.stream(chat_request(), model):
        chunks.append(chunk)
    return chunks


async def first_text(iterator: AsyncIterator[Chunk]) -> str:
    async for chunk in iterator:
        if chunk.text:
            return chunk.text
    raise AssertionError("the stream ended without text")


def by_event(body: bytes, framing: bytes) -> list[bytes]:
    """The body cut after every event (SSE) or line (NDJSON)."""
    parts = body.split(framing)
    return [part + framing for part in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


@pytest.mark.parametrize("split", list(SPLITTERS))
@pytest.mark.parametrize(("kind", "case"), CASES, ids=CASE_IDS)
async def test_stream_yields_the_fixture_text_and_usage(kind: Kind, case: Case, split: str) -> None:
    async with FakeUpstream(fixture(case.fixture, split=SPLITTERS[split])) as upstream:
        provider = kind.make(upstream.base_url)
        try:
            chunks = await collect(provider, kind.model)
        finally:
            await provider.aclose()
    assert "".join(c.text for c in chunks if c.kind == "token") == case.text
    assert [c.finish_reason for c in chunks if c.finish_reason] == [case.finish]
    assert chunks[-1].finish_reason == case.finish
    assert chunks[-1].usage == case.usage
    assert all(c.is_delta for c in chunks[:-1]), "no empty chunk before the final one"


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
async def test_mid_stream_error_raises_after_the_text_before_it(kind: Kind) -> None:
    async with FakeUpstream(fixture(kind.stream_error, split=SPLITTERS["mid_line"])) as upstream:
        provider = kind.make(upstream.base_url)
        chunks: list[Chunk] = []
        try:
            with pytest.raises(UpstreamError) as raised:
                await collect(provider, kind.model, into=chunks)
        finally:
            await provider.aclose()
    assert "".join(c.text for c in chunks if c.kind == "token") == kind.text_before_error
    assert type(raised.value) is UpstreamError
    assert raised.value.retryable is True


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
async def test_stream_cut_before_its_end_marker_is_an_error(kind: Kind) -> None:
    body = b"".join(by_event(fixture(kind.cases[0].fixture).body, kind.framing)[:3])
    async with FakeUpstream(fixture(kind.cases[0].fixture, body=body)) as upstream:
        provider = kind.make(upstream.base_url)
        try:
            with pytest.raises(UpstreamError, match="ended before") as raised:
                await collect(provider, kind.model)
        finally:
            await provider.aclose()
    assert raised.value.retryable is True


def _error_reply(status: int, body: bytes, retry_after: str | None = None) -> Reply:
    headers = (("retry-after", retry_after),) if retry_after is not None else ()
    return Reply(status, "application/json", body, headers=headers)


OPENAI_500 = b'{"error":{"message":"boom","type":"server_error","param":null,"code":null}}'
ANTHROPIC_401 = (
    b'{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}'
)
PRE_STREAM = [
    # kind, reply, error class, retryable, retry_after, message fragment
    ("openai", fixture("openai-error-401.json"), UpstreamError, False, None, "Incorrect API key"),
    ("openai", fixture("openai-error-429.json", headers=(("retry-after", "3"),)),
     UpstreamRateLimited, True, 3.0, "Rate limit reached"),
    ("openai", fixture("openai-error-429-insufficient-quota.json"), UpstreamError, False, None,
     "exceeded your current quota"),
    ("openai", fixture("openai-error-404.json"), UpstreamError, False, None, "does not exist"),
    ("openai", fixture("openai-error-400.json"), UpstreamError, False, None, "max_completion"),
    ("openai", _error_reply(500, OPENAI_500), UpstreamError, True, None, "boom"),
    ("compat", _error_reply(503, OPENAI_500), UpstreamError, True, None, "boom"),
    ("compat", _error_reply(504, b"gateway timeout"), UpstreamTimeout, True, None, "504"),
    ("compat", replace(_error_reply(502, OPENAI_500), split=bytewise, delay_s=0.002),
     UpstreamError, True, None, "boom"),
    ("compat", Reply(307, "text/plain", b"moved", headers=(("location", "http://127.0.0.1:9/"),)),
     UpstreamError, False, None, "307"),
    ("anthropic", _error_reply(401, ANTHROPIC_401), UpstreamError, False, None, "x-api-key"),
    ("anthropic", fixture("anthropic-error-429.json", headers=(("retry-after", "7"),)),
     UpstreamRateLimited, True, 7.0, "rate limit"),
    ("anthropic", fixture("anthropic-error-529.json"), UpstreamError, True, None, "Overloaded"),
    ("ollama", fixture("ollama-error-404.json"), UpstreamError, False, None, "try pulling it"),
    ("ollama", _error_reply(500, b'{"error":"no memory"}'), UpstreamError, True, None, "memory"),
    ("ollama", _error_reply(429, b'{"error":"busy"}', "1"), UpstreamRateLimited, True, 1.0, "busy"),
]  # fmt: skip
_KIND = {k.name: k for k in KINDS}


@pytest.mark.parametrize(
    ("kind_name", "reply", "error", "retryable", "retry_after", "fragment"),
    PRE_STREAM,
    ids=[f"{p[0]}-{p[1].status}" for p in PRE_STREAM],
)
async def test_http_error_before_the_stream_maps_to_the_error_tree(
    kind_name: str,
    reply: Reply,
    error: type[UpstreamError],
    retryable: bool,
    retry_after: float | None,
    fragment: str,
) -> None:
    kind = _KIND[kind_name]
    async with FakeUpstream(reply) as upstream:
        provider = kind.make(upstream.base_url)
        try:
            with pytest.raises(UpstreamError) as raised:
                await collect(provider, kind.model)
        finally:
            await provider.aclose()
    assert type(raised.value) is error
    assert raised.value.retryable is retryable
    assert raised.value.code in (str(reply.status), "insufficient_quota")
    assert fragment in raised.value.message
    assert raised.value.message.startswith(provider.name)
    assert "sk-test" not in raised.value.message.replace("sk-test****", "")
    if error is UpstreamRateLimited:
        assert isinstance(raised.value, UpstreamRateLimited)
        assert raised.value.retry_after == retry_after
    assert len(upstream.requests) == 1, "no hidden SDK retries"


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
async def test_refused_connection_is_a_retryable_upstream_error(kind: Kind) -> None:
    async with FakeUpstream(fixture(kind.cases[0].fixture)) as upstream:
        base_url = upstream.base_url
    provider = kind.make(base_url)  # the port is closed again now
    try:
        with pytest.raises(UpstreamError) as raised:
            await collect(provider, kind.model)
    finally:
        await provider.aclose()
    assert type(raised.value) is UpstreamError
    assert raised.value.retryable is True


def _stalled(kind: Kind) -> Reply:
    """The first fixture, one event per piece, stalled for good after the first text."""
    reply = fixture(kind.cases[0].fixture)
    pieces = by_event(reply.body, kind.framing)
    text_at = next(i for i, p in enumerate(pieces) if re.search(rb'"(content|text)": ?"[^"]', p))
    return fixture(
        kind.cases[0].fixture,
        split=lambda body: by_event(body, kind.framing),
        stall_after=text_at + 1,
    )


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
async def test_aclose_mid_stream_closes_the_upstream_connection(kind: Kind) -> None:
    async with FakeUpstream(_stalled(kind)) as upstream:
        provider = kind.make(upstream.base_url)
        try:
            iterator = provider.stream(chat_request(), kind.model)
            assert await first_text(iterator)
            await iterator.aclose()  # type: ignore[attr-defined]
            await upstream.wait_all_closed()
        finally:
            await provider.aclose()
    assert [c.closed_by_client for c in upstream.connections] == [True]
    assert upstream.connections[0].response_complete is False


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
async def test_cancelled_read_on_a_stalled_upstream_closes_the_connection(kind: Kind) -> None:
    """What the core's idle timeout does: cancel the pending read, then aclose()."""
    async with FakeUpstream(_stalled(kind)) as upstream:
        provider = kind.make(upstream.base_url)
        try:
            iterator = provider.stream(chat_request(), kind.model)
            assert await first_text(iterator)
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.05):
                    await anext(iterator)
            await iterator.aclose()  # type: ignore[attr-defined]
            await upstream.wait_all_closed()
        finally:
            await provider.aclose()
    assert [c.closed_by_client for c in upstream.connections] == [True]


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
async def test_cancelling_the_consuming_task_closes_the_connection(kind: Kind) -> None:
    async with FakeUpstream(_stalled(kind)) as upstream:
        provider = kind.make(upstream.base_url)
        got_text = asyncio.Event()

        async def consume() -> None:
            async for chunk in provider.stream(chat_request(), kind.model):
                if chunk.text:
                    got_text.set()

        try:
            task = asyncio.create_task(consume())
            await got_text.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await upstream.wait_all_closed()
        finally:
            await provider.aclose()
    assert [c.closed_by_client for c in upstream.connections] == [True]


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
async def test_one_client_serves_successive_streams(kind: Kind) -> None:
    async with FakeUpstream(fixture(kind.cases[0].fixture)) as upstream:
        provider = kind.make(upstream.base_url)
        try:
            first = await collect(provider, kind.model)
            second = await collect(provider, kind.model)
        finally:
            await provider.aclose()
    assert first == second
    assert len(upstream.requests) == 2
    assert len(upstream.connections) == 1, "the connection is kept alive and reused"

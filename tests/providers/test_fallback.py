"""Ordered fallbacks: only before the first token, and every attempt closed."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from app.core.events import Usage
from app.errors import NotFound, UpstreamError, UpstreamRateLimited, UpstreamTimeout
from app.providers.base import ChatRequest, Chunk
from app.providers.fallback import MAX_BACKOFF_S, backoff, open_stream
from app.providers.registry import Target
from tests.providers.kinds import KINDS, chat_request
from tests.support.fake_upstreams import FakeUpstream, fixture

DONE = Chunk(finish_reason="stop", usage=Usage(1, 2))


class Scripted:
    """A provider that yields its texts, then fails or finishes; records closes."""

    accepts: frozenset[str] = frozenset()

    def __init__(self, name: str, texts: list[str], error: Exception | None = None) -> None:
        self.name = name
        self._texts = texts
        self._error = error
        self.opened = 0
        self.closed = 0

    async def stream(self, request: ChatRequest, model: str) -> AsyncIterator[Chunk]:
        self.opened += 1
        try:
            for text in self._texts:
                yield Chunk(text)
            if self._error is not None:
                raise self._error
            yield DONE
        finally:
            self.closed += 1

    async def aclose(self) -> None:
        return None


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


async def run(*providers: Scripted, sleep: Sleeps | None = None) -> list[Chunk]:
    targets = tuple(Target(p, "m") for p in providers)
    return [c async for c in open_stream(targets, chat_request(), sleep=sleep or Sleeps())]


@pytest.mark.parametrize(
    "error",
    [
        UpstreamError("5xx", retryable=True),
        UpstreamTimeout("slow"),
        UpstreamRateLimited("429", retry_after=0.1),
    ],
)
async def test_retryable_failure_before_the_first_token_moves_on(error: UpstreamError) -> None:
    first, second = Scripted("a", [], error), Scripted("b", ["hi"])
    sleeps = Sleeps()
    chunks = await run(first, second, sleep=sleeps)
    assert chunks == [Chunk("hi"), DONE]
    assert (first.closed, second.opened, second.closed) == (1, 1, 1)
    assert len(sleeps.delays) == 1
    assert 0 < sleeps.delays[0] <= MAX_BACKOFF_S


async def test_failure_after_the_first_token_is_reported_not_hidden() -> None:
    first, second = Scripted("a", ["par"], UpstreamError("cut", retryable=True)), Scripted("b", [])
    stream = open_stream((Target(first, "m"), Target(second, "m")), chat_request())
    assert await anext(stream) == Chunk("par")
    with pytest.raises(UpstreamError, match="cut"):
        await anext(stream)
    assert second.opened == 0
    assert first.closed == 1


async def test_non_retryable_failure_does_not_fall_back() -> None:
    first, second = Scripted("a", [], UpstreamError("401", retryable=False)), Scripted("b", [])
    with pytest.raises(UpstreamError, match="401"):
        await run(first, second)
    assert second.opened == 0


async def test_last_target_failure_propagates_after_every_target_tried() -> None:
    errors = [UpstreamError(f"e{i}", retryable=True) for i in range(3)]
    providers = [Scripted(f"p{i}", [], e) for i, e in enumerate(errors)]
    sleeps = Sleeps()
    with pytest.raises(UpstreamError, match="e2"):
        await run(*providers, sleep=sleeps)
    assert [p.closed for p in providers] == [1, 1, 1]
    assert len(sleeps.delays) == 2


async def test_errors_outside_the_upstream_tree_propagate() -> None:
    first, second = Scripted("a", [], NotFound("no such model")), Scripted("b", [])
    with pytest.raises(NotFound):
        await run(first, second)
    assert second.opened == 0


async def test_aclose_by_the_consumer_closes_the_provider_iterator() -> None:
    provider = Scripted("a", ["one", "two"])
    stream = open_stream((Target(provider, "m"),), chat_request())
    assert await anext(stream) == Chunk("one")
    await stream.aclose()  # type: ignore[attr-defined]
    assert provider.closed == 1


def test_backoff_honours_a_small_retry_after_only() -> None:
    assert backoff(0, UpstreamRateLimited("x", retry_after=0.5)) == 0.5
    assert backoff(0, UpstreamRateLimited("x", retry_after=30)) == backoff(0, UpstreamError("x"))
    assert backoff(10, UpstreamError("x")) == MAX_BACKOFF_S


async def test_fallback_across_real_upstreams_on_429() -> None:
    openai, anthropic = KINDS[0], KINDS[1]
    limited = fixture("openai-error-429.json", headers=(("retry-after", "0"),))
    async with (
        FakeUpstream(limited) as first,
        FakeUpstream(fixture("anthropic-messages-stream.sse")) as second,
    ):
        targets = (
            Target(openai.make(first.base_url), "gpt-4o"),
            Target(anthropic.make(second.base_url), "claude-test-model"),
        )
        try:
            chunks = [c async for c in open_stream(targets, chat_request())]
        finally:
            for target in targets:
                await target.provider.aclose()
    assert "".join(c.text for c in chunks) == "Hello!"
    assert (len(first.requests), len(second.requests)) == (1, 1)

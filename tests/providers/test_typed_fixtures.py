"""Each provider turns the recorded tool-call, refusal and reasoning streams into
typed chunks that add up to what the official SDKs accumulate from the same
bytes (the values below are read off the fixtures, never derived with the code)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest

from app.core.events import Usage
from app.providers.base import Chunk, Provider
from tests.providers.kinds import KINDS, chat_request
from tests.support.fake_upstreams import FakeUpstream, fixture

_MAKE = {kind.name: kind.make for kind in KINDS}


@dataclass
class Totals:
    text: str = ""
    reasoning: str = ""
    refusal: str = ""
    signatures: list[str] = field(default_factory=list)
    redacted: list[str] = field(default_factory=list)
    calls: list[tuple[str, str, str]] = field(default_factory=list)  # id, name, arguments
    finish: str | None = None
    usage: Usage | None = None


def totals(chunks: list[Chunk]) -> Totals:
    out = Totals()
    for chunk in chunks:
        if chunk.call is not None:
            assert chunk.call.index == len(out.calls), "calls are numbered in order"
            out.calls.append((chunk.call.id, chunk.call.name, ""))
        elif chunk.kind == "tool_call_delta":
            call_id, name, arguments = out.calls[chunk.call_index]
            out.calls[chunk.call_index] = (call_id, name, arguments + chunk.text)
        elif chunk.kind == "reasoning_signature":
            out.signatures.append(chunk.text)
        elif chunk.kind == "reasoning_redacted":
            out.redacted.append(chunk.text)
        elif chunk.text:
            name = {"token": "text", "reasoning": "reasoning", "refusal": "refusal"}[chunk.kind]
            setattr(out, name, getattr(out, name) + chunk.text)
        if chunk.finish_reason is not None:
            out.finish, out.usage = chunk.finish_reason, chunk.usage
    return out


def random_cuts(seed: int, count: int = 24):  # type: ignore[no-untyped-def]
    def split(body: bytes) -> list[bytes]:
        rng = random.Random(seed)
        cuts = sorted(rng.sample(range(1, len(body)), min(count, len(body) - 1)))
        return [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]

    return split


async def run(kind: str, name: str, seed: int) -> Totals:
    async with FakeUpstream(fixture(name, split=random_cuts(seed))) as upstream:
        provider: Provider = _MAKE[kind](upstream.base_url)
        try:
            return totals([c async for c in provider.stream(chat_request(), "m")])
        finally:
            await provider.aclose()


SEEDS = [0, 1, 2]


@pytest.mark.parametrize("seed", SEEDS)
async def test_openai_parallel_tool_calls_come_as_starts_and_fragments(seed: int) -> None:
    got = await run("openai", "openai-chat-stream-tool-calls.sse", seed)
    assert got.calls == [
        (
            "call_JMW1whyEaYG438VE1OIflxA2",
            "GetWeatherArgs",
            '{"city": "Edinburgh", "country": "GB", "units": "c"}',
        ),
        (
            "call_DNYTawLBoN8fj3KN6qU9N1Ou",
            "get_stock_price",
            '{"ticker": "AAPL", "exchange": "NASDAQ"}',
        ),
    ]
    assert (got.text, got.finish) == ("", "tool_calls")
    assert got.usage == Usage(149, 60, None, 0)


@pytest.mark.parametrize("seed", SEEDS)
async def test_openai_refusal_deltas_are_refusal_chunks(seed: int) -> None:
    got = await run("openai", "openai-chat-stream-refusal.sse", seed)
    assert got.refusal == "I'm sorry, I can't assist with that request."
    assert (got.text, got.finish, got.usage) == ("", "stop", Usage(79, 11, None, 0))


@pytest.mark.parametrize("seed", SEEDS)
async def test_deepseek_reasoning_content_is_reasoning(seed: int) -> None:
    got = await run("compat", "openai-compat-stream-reasoning-content.sse", seed)
    assert len(got.reasoning) == 882
    assert got.reasoning.startswith('Hmm, the user just said "Hello".')
    assert got.text == "Hello there! \U0001f60a How can I help you today?"
    assert (got.finish, got.usage) == ("stop", Usage(6, 212, 0, 198))


@pytest.mark.parametrize("seed", SEEDS)
async def test_openrouter_reasoning_beside_comment_lines(seed: int) -> None:
    got = await run("compat", "openai-compat-stream-reasoning-openrouter.sse", seed)
    assert got.reasoning == "This is a simple arithmetic question. 2+2 equals 4."
    assert got.text == "2 + 2 = 4"
    assert (got.finish, got.usage) == ("stop", Usage(43, 36, 0, 13))


@pytest.mark.parametrize("seed", SEEDS)
async def test_anthropic_tool_use_blocks_are_numbered_calls(seed: int) -> None:
    got = await run("anthropic", "anthropic-messages-stream-parallel-tools.sse", seed)
    assert got.text.startswith("Certainly! I'd be happy to help you with information about")
    assert got.calls == [
        (
            "toolu_01YUs66wivdF51ENZFX8gX9S",
            "get_weather",
            '{"location": "New York, NY", "unit": "fahrenheit"}',
        ),
        ("toolu_01NRtod2L7M7TBDj9GCzsZCx", "get_time", '{"timezone": "America/New_York"}'),
    ]
    assert (got.finish, got.usage) == ("tool_calls", Usage(514, 165, cached_tokens=0))


@pytest.mark.parametrize("seed", SEEDS)
async def test_anthropic_redacted_thinking_data_passes_whole(seed: int) -> None:
    got = await run("anthropic", "anthropic-messages-stream-redacted-thinking.sse", seed)
    assert [len(data) for data in got.redacted] == [744, 296]
    body = fixture("anthropic-messages-stream-redacted-thinking.sse").body.decode()
    assert all(f'"data":"{data}"' in body for data in got.redacted), "byte for byte"
    assert got.text.startswith("I notice that you've sent what appears to be")
    assert (got.finish, got.usage) == ("stop", Usage(92, 189, cached_tokens=0))


async def test_anthropic_thinking_and_its_signature() -> None:
    got = await run("anthropic", "anthropic-messages-stream-thinking.sse", 0)
    assert got.reasoning.startswith("Let me solve this step by step:")
    assert got.reasoning.endswith("10,800 + 1,350 + 81 = 12,231")
    assert got.signatures == ["EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds..."]
    assert (got.text, got.finish) == ("27 * 453 = 12,231", "stop")


async def test_ollama_whole_tool_calls_become_a_start_and_one_fragment() -> None:
    got = await run("ollama", "ollama-chat-stream-tool-calls.ndjson", 0)
    assert got.calls == [("call_0", "get_weather", '{"city":"Tokyo"}')]
    assert got.finish == "tool_calls"

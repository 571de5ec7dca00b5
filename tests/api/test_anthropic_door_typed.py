"""Typed content through POST /v1/messages: thinking and its signatures, redacted
thinking, tool calls from Anthropic, OpenAI and Ollama upstreams, reasoning from an
OpenAI-compatible server, and a tool round trip, judged by the official `anthropic` SDK
against fake upstreams replaying recorded bodies cut at random byte boundaries."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest

from app.providers.registry import ProviderRegistry
from app.settings import Settings
from tests.api.test_anthropic_door_upstreams import (
    HISTORY,
    blocks,
    gateway,
    random_cuts,
    streamed_and_created,
)
from tests.providers.kinds import KINDS, Kind
from tests.support.fake_upstreams import FakeUpstream, fixture
from tests.support.server import run_sluice

KIND = {kind.name: kind for kind in KINDS}
SEEDS = range(3)
ANTHROPIC_STREAMS = [
    "anthropic-messages-stream-recorded.sse",
    "anthropic-messages-stream-tool-use.sse",
    "anthropic-messages-stream-parallel-tools.sse",
    "anthropic-messages-stream-redacted-thinking.sse",
]


async def straight_from_anthropic(name: str) -> anthropic.types.Message:
    """What the SDK builds from the fixture with no gateway in between: the reference."""
    async with (
        FakeUpstream(fixture(name)) as upstream,
        anthropic.AsyncAnthropic(base_url=upstream.base_url, api_key="k", max_retries=0) as sdk,
        sdk.messages.stream(model="claude-test-model", max_tokens=64, messages=HISTORY) as stream,
    ):
        return await stream.get_final_message()


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", ANTHROPIC_STREAMS)
async def test_anthropic_blocks_pass_through_exactly_signatures_included(
    name: str, seed: int
) -> None:
    reference = await straight_from_anthropic(name)
    async with gateway(KIND["anthropic"], fixture(name, split=random_cuts(seed))) as (
        sdk,
        _,
        model,
    ):
        streamed, created = await streamed_and_created(sdk, model)
    assert blocks(streamed) == blocks(created) == blocks(reference)
    assert streamed.stop_reason == created.stop_reason == reference.stop_reason
    for message in (streamed, created):
        assert message.usage.input_tokens == reference.usage.input_tokens
        assert message.usage.output_tokens == reference.usage.output_tokens


async def test_the_recorded_thinking_keeps_its_signature_byte_for_byte() -> None:
    async with gateway(KIND["anthropic"], fixture(ANTHROPIC_STREAMS[0])) as (sdk, _, model):
        streamed, _ = await streamed_and_created(sdk, model)
    thinking = [b for b in blocks(streamed) if b["type"] == "thinking"]
    raw = fixture(ANTHROPIC_STREAMS[0]).body.decode()
    assert thinking
    for block in thinking:
        assert len(block["signature"]) > 100
        assert block["signature"] in raw  # the upstream's bytes, not a re-encoding


OPENAI_CALLS = [
    {
        "type": "tool_use",
        "id": "call_JMW1whyEaYG438VE1OIflxA2",
        "name": "GetWeatherArgs",
        "input": {"city": "Edinburgh", "country": "GB", "units": "c"},
    },
    {
        "type": "tool_use",
        "id": "call_DNYTawLBoN8fj3KN6qU9N1Ou",
        "name": "get_stock_price",
        "input": {"ticker": "AAPL", "exchange": "NASDAQ"},
    },
]


@pytest.mark.parametrize("seed", SEEDS)
async def test_openai_tool_calls_become_tool_use_blocks_with_the_upstreams_ids(seed: int) -> None:
    reply = fixture("openai-chat-stream-tool-calls.sse", split=random_cuts(seed))
    async with gateway(KIND["openai"], reply) as (sdk, _, model):
        streamed, created = await streamed_and_created(sdk, model)
    assert blocks(streamed) == blocks(created) == OPENAI_CALLS
    assert streamed.stop_reason == created.stop_reason == "tool_use"
    assert (created.usage.input_tokens, created.usage.output_tokens) == (149, 60)
    assert (streamed.usage.input_tokens, streamed.usage.output_tokens) == (149, 60)


@pytest.mark.parametrize("seed", SEEDS)
async def test_ollama_tool_calls_become_tool_use_blocks(seed: int) -> None:
    reply = fixture("ollama-chat-stream-tool-calls.ndjson", split=random_cuts(seed))
    async with gateway(KIND["ollama"], reply) as (sdk, _, model):
        streamed, created = await streamed_and_created(sdk, model)
    [call] = blocks(created)
    assert blocks(streamed) == [call]
    assert (call["type"], call["name"], call["input"]) == (
        "tool_use",
        "get_weather",
        {"city": "Tokyo"},
    )
    assert streamed.stop_reason == created.stop_reason


@pytest.mark.parametrize("seed", SEEDS)
async def test_compatible_reasoning_becomes_a_thinking_block_without_signature(seed: int) -> None:
    reply = fixture("openai-compat-stream-reasoning-content.sse", split=random_cuts(seed))
    async with gateway(KIND["compat"], reply) as (sdk, _, model):
        streamed, created = await streamed_and_created(sdk, model)
    content = blocks(created)
    assert blocks(streamed) == content
    assert [b["type"] for b in content] == ["thinking", "text"]
    assert content[0]["signature"] == ""
    assert content[0]["thinking"].startswith('Hmm, the user just said "Hello".')
    assert len(content[0]["thinking"]) == 882
    assert content[1]["text"] == "Hello there! \U0001f60a How can I help you today?"


def tool_round_trip(call: dict[str, Any]) -> list[Any]:
    return [
        {"role": "user", "content": "What is the weather in Edinburgh?"},
        {"role": "assistant", "content": [call]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": call["id"], "content": "12 C"}],
        },
    ]


TOOLS: list[anthropic.types.ToolParam] = [
    {"name": "GetWeatherArgs", "input_schema": {"type": "object", "properties": {}}},
    {"name": "get_stock_price", "input_schema": {"type": "object", "properties": {}}},
]


async def test_a_tool_round_trip_through_an_openai_upstream() -> None:
    """tool_use from the upstream, the client's tool_result back, then the answer: the
    upstream receives the call and its result in its own shape, under the same id."""
    kind: Kind = KIND["openai"]
    async with FakeUpstream(
        fixture("openai-chat-stream-tool-calls.sse"), fixture("openai-chat-stream.sse")
    ) as upstream:
        provider = kind.make(upstream.base_url)
        registry = ProviderRegistry({provider.name: provider}, {})
        async with (
            run_sluice(Settings(sim_tps=0), lambda: registry) as server,
            anthropic.AsyncAnthropic(base_url=server.url, api_key="x", max_retries=0) as sdk,
        ):
            model = f"{provider.name}/{kind.model}"
            question: list[anthropic.types.MessageParam] = tool_round_trip(OPENAI_CALLS[0])[:1]
            async with sdk.messages.stream(
                model=model, max_tokens=64, messages=question, tools=TOOLS
            ) as stream:
                first = await stream.get_final_message()
            call = blocks(first)[0]
            answer = await sdk.messages.create(
                model=model, max_tokens=64, messages=tool_round_trip(call), tools=TOOLS
            )
    assert first.stop_reason == "tool_use"
    assert answer.stop_reason == "end_turn"
    assert blocks(answer)[0]["text"].startswith("I'm unable to provide real-time weather")
    history: Any = upstream.requests[1].json()["messages"]
    assert history[1]["tool_calls"][0]["id"] == call["id"]
    assert history[1]["tool_calls"][0]["function"]["name"] == "GetWeatherArgs"
    assert history[2] == {"role": "tool", "tool_call_id": call["id"], "content": "12 C"}
    tools: Any = upstream.requests[1].json()["tools"]
    assert [t["function"]["name"] for t in tools] == ["GetWeatherArgs", "get_stock_price"]


async def test_a_tool_round_trip_through_an_anthropic_upstream_arrives_unchanged() -> None:
    kind: Kind = KIND["anthropic"]
    async with FakeUpstream(
        fixture("anthropic-messages-stream-parallel-tools.sse"),
        fixture("anthropic-messages-stream.sse"),
    ) as upstream:
        provider = kind.make(upstream.base_url)
        registry = ProviderRegistry({provider.name: provider}, {})
        async with (
            run_sluice(Settings(sim_tps=0), lambda: registry) as server,
            anthropic.AsyncAnthropic(base_url=server.url, api_key="x", max_retries=0) as sdk,
        ):
            model = f"{provider.name}/{kind.model}"
            question: list[anthropic.types.MessageParam] = [
                {"role": "user", "content": "Weather and time in New York?"}
            ]
            async with sdk.messages.stream(model=model, max_tokens=64, messages=question) as s:
                first = await s.get_final_message()
            calls = [b for b in blocks(first) if b["type"] == "tool_use"]
            history: list[Any] = [
                *question,
                {"role": "assistant", "content": blocks(first)},
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": c["id"], "content": "ok"}
                        for c in calls
                    ],
                },
            ]
            answer = await sdk.messages.create(model=model, max_tokens=64, messages=history)
    assert [c["id"] for c in calls] == [
        "toolu_01YUs66wivdF51ENZFX8gX9S",
        "toolu_01NRtod2L7M7TBDj9GCzsZCx",
    ]
    assert blocks(answer) == [{"type": "text", "text": "Hello!"}]
    assert upstream.requests[1].json()["messages"] == history

"""The Responses door in front of every provider, through the official `openai`
SDK: fake upstreams on loopback replay the recorded fixtures cut at random byte
boundaries; a scripted provider stands for an agent turn (reasoning, text,
parallel tool calls) until every provider yields one."""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import AsyncIterator, Callable
from typing import Any

import openai
import pytest
from openai.lib.streaming.responses import AsyncResponseStream
from openai.types.responses import FunctionToolParam, Response, ResponseInputItemParam

from app.core.events import ToolCall, Usage
from app.providers.base import ChatRequest, Chunk
from app.providers.registry import ProviderRegistry
from app.providers.simulated import SimulatedProvider
from app.settings import Settings
from tests.api.test_responses import essentials
from tests.providers.kinds import KIND_IDS, KINDS, OPENAI_TEXT, Kind
from tests.providers.test_conformance import _stalled
from tests.providers.test_end_to_end import wiring
from tests.support.fake_upstreams import FakeUpstream, Reply, fixture
from tests.support.server import run_sluice

CUTS_PER_CASE = 3


def registry_for(settings: Settings, env: dict[str, str]) -> Callable[[], ProviderRegistry]:
    return lambda: ProviderRegistry.from_settings(settings, env)


async def final_of(stream: AsyncResponseStream[None]) -> Response:
    """The response of the terminal event. `get_final_response()` would do for a
    completed one, but the SDK raises on `response.incomplete` (a token limit)."""
    events = [event async for event in stream]
    last = events[-1]
    assert last.type in ("response.completed", "response.incomplete")
    return last.response


def random_cuts(seed: int) -> Callable[[bytes], list[bytes]]:
    """A splitter cutting the body at a few random byte boundaries."""

    def split(body: bytes) -> list[bytes]:
        rng = random.Random(seed)
        edges = sorted({0, len(body), *rng.sample(range(1, len(body)), min(12, len(body) - 1))})
        return [body[a:b] for a, b in itertools.pairwise(edges)]

    return split


def projection(response: Response) -> list[tuple[object, ...]]:
    """What the SDK holds of each output item, whatever class it built it as."""
    items: list[tuple[object, ...]] = []
    for item in response.output:
        if item.type == "message":
            parts = [
                (p.type, p.text if p.type == "output_text" else p.refusal) for p in item.content
            ]
            items.append(("message", item.status, parts))
        elif item.type == "reasoning":
            items.append(("reasoning", [s.text for s in item.summary], item.encrypted_content))
        elif item.type == "function_call":
            items.append(("function_call", item.call_id, item.name, item.arguments))
    return items


async def both_ways(kind: Kind, reply: Reply) -> tuple[Response, Response]:
    """(created, streamed-and-accumulated) for the same upstream reply."""
    async with FakeUpstream(reply) as upstream:
        settings, env, model = wiring(kind, upstream.base_url)
        async with (
            run_sluice(settings, registry_for(settings, env)) as server,
            openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0) as sdk,
        ):
            created = await sdk.responses.create(model=model, input="Hello?")
            async with sdk.responses.stream(model=model, input="Hello?") as stream:
                return created, await final_of(stream)


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
async def test_the_streamed_response_equals_the_created_one_for_every_cut(kind: Kind) -> None:
    for case in kind.cases:
        for seed in range(CUTS_PER_CASE):
            reply = fixture(case.fixture, split=random_cuts(seed))
            created, final = await both_ways(kind, reply)
            assert essentials(final) == essentials(created)
            assert projection(final) == projection(created)
            assert final.output_text == case.text
            if case.usage is not None:
                assert final.usage is not None
                assert final.usage.input_tokens == case.usage.input_tokens
                assert final.usage.output_tokens == case.usage.output_tokens


KIND = {kind.name: kind for kind in KINDS}
TYPED = [
    ("openai", "openai-chat-stream-tool-calls.sse", "function_call"),
    ("openai", "openai-chat-stream-refusal.sse", "message"),
    ("anthropic", "anthropic-messages-stream-parallel-tools.sse", "function_call"),
    ("anthropic", "anthropic-messages-stream-redacted-thinking.sse", "reasoning"),
    ("anthropic", "anthropic-messages-stream-recorded.sse", "reasoning"),
    ("ollama", "ollama-chat-stream-tool-calls.ndjson", "function_call"),
    ("compat", "openai-compat-stream-reasoning-content.sse", "reasoning"),
]


@pytest.mark.parametrize(("kind", "name", "item"), TYPED, ids=[t[1] for t in TYPED])
async def test_typed_answers_accumulate_alike_for_every_cut(
    kind: str, name: str, item: str
) -> None:
    for seed in range(CUTS_PER_CASE):
        created, final = await both_ways(KIND[kind], fixture(name, split=random_cuts(seed)))
        assert projection(final) == projection(created)
        assert essentials(final) == essentials(created)
        assert item in [entry[0] for entry in projection(final)]


async def test_a_chain_of_three_turns_sends_the_whole_history_upstream() -> None:
    async with FakeUpstream(fixture("openai-chat-stream.sse")) as upstream:
        settings, env, model = wiring(KINDS[0], upstream.base_url)
        async with (
            run_sluice(settings, registry_for(settings, env)) as server,
            openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0) as sdk,
        ):
            first = await sdk.responses.create(model=model, input="one")
            second = await sdk.responses.create(
                model=model, input="two", previous_response_id=first.id
            )
            await sdk.responses.create(
                model=model, input="three", previous_response_id=second.id, instructions="Brief."
            )
        sent = upstream.requests[-1].json()["messages"]
    assert sent == [
        {"role": "system", "content": "Brief."},
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": OPENAI_TEXT},
        {"role": "user", "content": "two"},
        {"role": "assistant", "content": OPENAI_TEXT},
        {"role": "user", "content": "three"},
    ]


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
async def test_cancel_closes_the_upstream_connection(kind: Kind) -> None:
    async with FakeUpstream(_stalled(kind)) as upstream:
        settings, env, model = wiring(kind, upstream.base_url)
        async with (
            run_sluice(settings, registry_for(settings, env)) as server,
            openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0) as sdk,
        ):
            queued = await sdk.responses.create(model=model, input="x", background=True)
            for _ in range(500):  # until the first text has come through (bounded)
                if (await sdk.responses.retrieve(queued.id)).output_text:
                    break
                await asyncio.sleep(0.01)
            cancelled = await sdk.responses.cancel(queued.id)
            await upstream.wait_all_closed()
    assert cancelled.status == "cancelled"
    assert cancelled.output_text  # the text before the cancel is kept
    assert kind.cases[0].text.startswith(cancelled.output_text)
    assert [c.closed_by_client for c in upstream.connections] == [True]


class AgentTurn(SimulatedProvider):
    """Reasoning with its signature, a sentence, two parallel tool calls."""

    async def stream(self, request: ChatRequest, model: str) -> AsyncIterator[Chunk]:
        yield Chunk("The user wants ", kind="reasoning")
        yield Chunk("the weather.", kind="reasoning")
        yield Chunk("EqQBCgIYAhIM1gbcDa9GJwZA2b3h==", kind="reasoning_signature")
        yield Chunk("Let me check.")
        yield Chunk(kind="tool_call", call=ToolCall(0, "call_a", "get_weather"))
        yield Chunk('{"city": ', kind="tool_call_delta", call_index=0)
        yield Chunk(kind="tool_call", call=ToolCall(1, "call_b", "get_time"))
        yield Chunk('"Paris"}', kind="tool_call_delta", call_index=0)
        yield Chunk('{"tz": "CET"}', kind="tool_call_delta", call_index=1)
        yield Chunk(finish_reason="tool_calls", usage=Usage(20, 12, reasoning_tokens=4))


def calls_of(response: Response) -> list[tuple[str, str, str]]:
    return [
        (item.call_id, item.name, item.arguments)
        for item in response.output
        if item.type == "function_call"
    ]


async def test_an_agent_turn_accumulates_in_the_sdk_as_it_is_created() -> None:
    registry = lambda: ProviderRegistry({"sim": AgentTurn(0, 0)}, {})  # noqa: E731
    async with (
        run_sluice(Settings(sim_tps=0), registry) as server,
        openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0) as sdk,
    ):
        created = await sdk.responses.create(model="sim/echo", input="weather?")
        async with sdk.responses.stream(model="sim/echo", input="weather?") as stream:
            final = await stream.get_final_response()
    assert calls_of(final) == calls_of(created)
    assert calls_of(final) == [
        ("call_a", "get_weather", '{"city": "Paris"}'),
        ("call_b", "get_time", '{"tz": "CET"}'),
    ]
    assert final.output_text == created.output_text == "Let me check."
    reasoning = final.output[0]
    assert reasoning.type == "reasoning"
    assert reasoning.encrypted_content == "EqQBCgIYAhIM1gbcDa9GJwZA2b3h=="
    assert [s.text for s in reasoning.summary] == ["The user wants the weather."]
    assert final.usage is not None
    assert final.usage.output_tokens_details.reasoning_tokens == 4


TOOLS: list[FunctionToolParam] = [
    {
        "type": "function",
        "name": "GetWeatherArgs",
        "parameters": {"type": "object"},
        "strict": False,
    },
    {
        "type": "function",
        "name": "get_stock_price",
        "parameters": {"type": "object"},
        "strict": False,
    },
]


async def test_a_tool_round_trip_sends_the_calls_and_their_outputs_upstream() -> None:
    replies = (fixture("openai-chat-stream-tool-calls.sse"), fixture("openai-chat-stream.sse"))
    async with FakeUpstream(*replies) as upstream:
        settings, env, model = wiring(KINDS[0], upstream.base_url)
        async with (
            run_sluice(settings, registry_for(settings, env)) as server,
            openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0) as sdk,
        ):
            first = await sdk.responses.create(model=model, input="weather?", tools=TOOLS)
            calls = [item for item in first.output if item.type == "function_call"]
            outputs: list[ResponseInputItemParam] = [
                {"type": "function_call_output", "call_id": call.call_id, "output": f"ok {i}"}
                for i, call in enumerate(calls)
            ]
            second = await sdk.responses.create(
                model=model, input=outputs, previous_response_id=first.id, tools=TOOLS
            )
        sent: list[dict[str, Any]] = [request.json() for request in upstream.requests]
    assert [c.name for c in calls] == ["GetWeatherArgs", "get_stock_price"]
    assert second.output_text == OPENAI_TEXT
    assert [t["function"]["name"] for t in sent[1]["tools"]] == [
        "GetWeatherArgs",
        "get_stock_price",
    ]
    history = sent[1]["messages"]
    assert isinstance(history, list)
    assert [m["role"] for m in history] == ["user", "assistant", "tool", "tool"]
    assert [c["id"] for c in history[1]["tool_calls"]] == [c.call_id for c in calls]
    assert [c["function"]["arguments"] for c in history[1]["tool_calls"]] == [
        c.arguments for c in calls
    ]
    assert [(m["tool_call_id"], m["content"]) for m in history[2:]] == [
        (calls[0].call_id, "ok 0"),
        (calls[1].call_id, "ok 1"),
    ]

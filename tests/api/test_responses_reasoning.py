"""Reasoning passed back through the Responses door, with the official `openai` SDK.

Turn 1 is an Anthropic answer with signed thinking, redacted thinking and a
tool call; turn 2 sends its output items back (in `input`, or through
`previous_response_id`) with the tool's output. A fake Anthropic upstream
must receive the thinking blocks first in the assistant message, the
signature and the redacted data byte for byte, then the tool_use, then the
tool_result. An OpenAI-compatible upstream receives the same history without
any reasoning."""

from __future__ import annotations

import json
from typing import Any, cast

import openai
from openai.types.responses import FunctionToolParam, Response, ResponseInputItemParam

from app.providers.registry import ProviderRegistry
from tests.providers.kinds import KINDS, OPENAI_TEXT
from tests.providers.test_end_to_end import wiring
from tests.support.fake_upstreams import FakeUpstream, Reply, fixture
from tests.support.server import run_sluice

# Base64, with the characters a re-encoding could touch: `/`, `+`, `=`.
SIGNATURE = "EqQBCgIYAhIM1gbcDa9G/JwZA2b3h+GgxBdjrkzLoky3dl1pkiMOYds/+ZA=="
REDACTED = "EmwKAhgBEgy3va3pzix/LafPsn4aDFh0Ov+Mhw=="
THINKING = ["The user wants ", "the weather in Paris."]
TOOLS: list[FunctionToolParam] = [
    {"type": "function", "name": "get_weather", "parameters": {"type": "object"}, "strict": False}
]
ANTHROPIC = next(kind for kind in KINDS if kind.name == "anthropic")
OPENAI = next(kind for kind in KINDS if kind.name == "openai")


def _sse(events: list[dict[str, Any]]) -> bytes:
    return b"".join(
        f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode() for event in events
    )


def _delta(index: int, delta: dict[str, Any]) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": index, "delta": delta}


def thinking_then_tool_call() -> Reply:
    """An Anthropic stream: thinking and its signature, redacted thinking, a tool call."""
    usage = {"input_tokens": 40, "output_tokens": 1}
    message = {"id": "msg_1", "type": "message", "role": "assistant", "content": [], "usage": usage}
    tool_use = {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {}}
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": message},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking"}},
        *(_delta(0, {"type": "thinking_delta", "thinking": text}) for text in THINKING),
        _delta(0, {"type": "signature_delta", "signature": SIGNATURE}),
        {"type": "content_block_stop", "index": 0},
        {
            "type": "content_block_start",
            "index": 1,
            "content_block": {"type": "redacted_thinking", "data": REDACTED},
        },
        {"type": "content_block_stop", "index": 1},
        {"type": "content_block_start", "index": 2, "content_block": tool_use},
        _delta(2, {"type": "input_json_delta", "partial_json": '{"city": "Paris"}'}),
        {"type": "content_block_stop", "index": 2},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use"},
            "usage": {"output_tokens": 30},
        },
        {"type": "message_stop"},
    ]
    return Reply(200, "text/event-stream", _sse(events))


def items_of(response: Response) -> list[ResponseInputItemParam]:
    """The output items as a client sends them back."""
    return [cast("ResponseInputItemParam", item.to_dict()) for item in response.output]


def tool_output(response: Response) -> ResponseInputItemParam:
    call = next(item for item in response.output if item.type == "function_call")
    return {"type": "function_call_output", "call_id": call.call_id, "output": "18 C, sunny"}


async def two_turns(*, chained: bool) -> tuple[Response, bytes]:
    """Turn 1 against the fake Anthropic upstream, then turn 2 sending it back;
    returns turn 1 and the body the upstream got for turn 2."""
    replies = (thinking_then_tool_call(), fixture("anthropic-messages-stream.sse"))
    async with FakeUpstream(*replies) as upstream:
        settings, env, model = wiring(ANTHROPIC, upstream.base_url)
        registry = lambda: ProviderRegistry.from_settings(settings, env)  # noqa: E731
        async with (
            run_sluice(settings, registry) as server,
            openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0) as sdk,
        ):
            ask: ResponseInputItemParam = {"role": "user", "content": "Weather in Paris?"}
            first = await sdk.responses.create(
                model=model, input=[ask], tools=TOOLS, reasoning={"effort": "low"}
            )
            if chained:
                turn: list[ResponseInputItemParam] = [tool_output(first)]
                previous: str | openai.Omit = first.id
            else:
                turn = [ask, *items_of(first), tool_output(first)]
                previous = openai.omit
            second = await sdk.responses.create(
                model=model,
                input=turn,
                tools=TOOLS,
                reasoning={"effort": "low"},
                previous_response_id=previous,
            )
        assert second.output_text == "Hello!"
        return first, upstream.requests[1].body


def assert_thinking_goes_back_first(first: Response, body: bytes) -> None:
    reasoning = [item for item in first.output if item.type == "reasoning"]
    assert [(r.encrypted_content, [s.text for s in r.summary]) for r in reasoning] == [
        (SIGNATURE, ["".join(THINKING)]),
        (REDACTED, []),
    ]
    assert json.loads(body)["messages"] == [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "".join(THINKING), "signature": SIGNATURE},
                {"type": "redacted_thinking", "data": REDACTED},
                {
                    "type": "tool_use",
                    "id": "toolu_01",
                    "name": "get_weather",
                    "input": {"city": "Paris"},
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01", "content": "18 C, sunny"}
            ],
        },
    ]
    # The upstream's bytes of the signature, as it wrote them in turn 1's stream.
    assert json.dumps(SIGNATURE).encode() in thinking_then_tool_call().body
    assert json.dumps(SIGNATURE).encode() in body


async def test_reasoning_items_sent_back_reach_anthropic_as_signed_thinking_first() -> None:
    first, body = await two_turns(chained=False)
    assert_thinking_goes_back_first(first, body)


async def test_previous_response_id_sends_the_stored_thinking_back_the_same_way() -> None:
    first, body = await two_turns(chained=True)
    assert_thinking_goes_back_first(first, body)


async def test_an_openai_compatible_upstream_gets_the_history_without_the_reasoning() -> None:
    call = {
        "type": "function_call",
        "call_id": "call_1",
        "name": "get_weather",
        "arguments": '{"city": "Paris"}',
    }
    output = {"type": "function_call_output", "call_id": "call_1", "output": "18 C, sunny"}
    signed = {
        "type": "reasoning",
        "id": "rs_1",
        "summary": [{"type": "summary_text", "text": "Think."}],
        "encrypted_content": SIGNATURE,
    }
    redacted = {"type": "reasoning", "id": "rs_2", "summary": [], "encrypted_content": REDACTED}
    ask = {"role": "user", "content": "Weather in Paris?"}
    async with FakeUpstream(fixture("openai-chat-stream.sse")) as upstream:
        settings, env, model = wiring(OPENAI, upstream.base_url)
        registry = lambda: ProviderRegistry.from_settings(settings, env)  # noqa: E731
        async with (
            run_sluice(settings, registry) as server,
            openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0) as sdk,
        ):
            for items in ([ask, signed, redacted, call, output], [ask, call, output]):
                answer = await sdk.responses.create(
                    model=model, input=cast("list[ResponseInputItemParam]", items), tools=TOOLS
                )
                assert answer.output_text == OPENAI_TEXT
        with_reasoning, without = (request.json() for request in upstream.requests)
    assert with_reasoning == without
    assert with_reasoning["messages"] == [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "content": "18 C, sunny", "tool_call_id": "call_1"},
    ]

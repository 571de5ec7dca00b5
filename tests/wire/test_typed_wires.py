"""Typed events on both wires: native payloads, and OpenAI chunks that the
official SDK accumulates into the same message as the non-streamed answer."""

from __future__ import annotations

import json

import orjson
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletionChunk

from app.core.events import Done, Event, StreamMeta, Usage
from app.wire.completion import Answer, completion_body
from app.wire.native import NativeWire
from app.wire.openai import OpenAIWire, delta_of
from tests.support.sse_parser import SSEParser
from tests.support.typed import agent_turn, call, delta

META = StreamMeta("ABfw031mOJeYCSHe4yI2ZjOA6kMJL", "sim/echo", 1727346168, "")
DONE = Done("tool_calls", Usage(20, 9, cached_tokens=4, reasoning_tokens=5), 12.0, None)


def native_events(events: list[Event]) -> list[tuple[str, dict[str, object]]]:
    parser = SSEParser()
    parser.feed(NativeWire(META.stream_id, 1000).encode(events))
    return [(e.event, json.loads(e.data)) for e in parser.events]


def test_each_typed_event_has_its_own_native_event_and_payload() -> None:
    events = [
        *agent_turn(),
        delta(10, "reasoning_redacted", "EmwKAhgB=="),
        delta(11, "refusal", "No."),
    ]
    assert native_events(events) == [
        ("reasoning", {"text": "The user wants "}),
        ("reasoning", {"text": "the weather."}),
        ("reasoning_signature", {"signature": "EqQBCgIYAhIM1gbcDa9GJwZA2b3h=="}),
        ("token", {"text": "Let me check."}),
        ("tool_call", {"index": 0, "id": "call_a", "name": "get_weather"}),
        ("tool_call_delta", {"index": 0, "arguments": '{"city": '}),
        ("tool_call_delta", {"index": 0, "arguments": '"Paris"}'}),
        ("tool_call", {"index": 1, "id": "call_b", "name": "get_time"}),
        ("tool_call_delta", {"index": 1, "arguments": '{"tz": "Europe/Paris"}'}),
        ("reasoning_redacted", {"data": "EmwKAhgB=="}),
        ("refusal", {"text": "No."}),
    ]


def test_the_native_done_event_reports_cached_and_reasoning_tokens() -> None:
    [(name, payload)] = native_events([Event(1, "done", done=DONE)])
    assert name == "done"
    assert payload["usage"] == {
        "input_tokens": 20,
        "output_tokens": 9,
        "cached_tokens": 4,
        "reasoning_tokens": 5,
    }


def sdk_final(events: list[Event]) -> dict[str, object]:
    """What `chat.completions.stream(...).get_final_completion()` builds from the wire."""
    parser = SSEParser()
    parser.feed(OpenAIWire(META, include_usage=True).encode(events))
    state: ChatCompletionStreamState = ChatCompletionStreamState()
    for sse in parser.events:
        if sse.data != "[DONE]":
            state.handle_chunk(ChatCompletionChunk.model_validate_json(sse.data))
    dumped: dict[str, object] = state.get_final_completion().model_dump(exclude_none=True)
    return dumped


def body_of(events: list[Event]) -> dict[str, object]:
    answer = Answer()
    for event in events:
        if not event.terminal:
            answer.add(event)
    assert events[-1].done is not None
    raw = orjson.dumps(completion_body(META, answer, events[-1].done))
    dumped: dict[str, object] = json.loads(raw)
    return dumped


def message(completion: dict[str, object]) -> object:
    choices = completion["choices"]
    assert isinstance(choices, list)
    return choices[0]["message"]


def test_the_sdk_accumulates_tool_calls_reasoning_and_usage_from_the_stream() -> None:
    events = [*agent_turn(), Event(10, "done", done=DONE)]
    final = sdk_final(events)
    msg = message(final)
    assert msg == {
        "role": "assistant",
        "content": "Let me check.",
        "reasoning_content": "The user wants the weather.",
        "tool_calls": [
            {
                "id": "call_a",
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "arguments": '{"city": "Paris"}',
                },
                "index": 0,
            },
            {
                "id": "call_b",
                "type": "function",
                "function": {
                    "name": "get_time",
                    "arguments": '{"tz": "Europe/Paris"}',
                },
                "index": 1,
            },
        ],
    }
    assert final["choices"][0]["finish_reason"] == "tool_calls"  # type: ignore[index]
    assert final["usage"] == {
        "prompt_tokens": 20,
        "completion_tokens": 9,
        "total_tokens": 29,
        "prompt_tokens_details": {"cached_tokens": 4},
        "completion_tokens_details": {"reasoning_tokens": 5},
    }


def without_stream_keys(msg: object) -> object:
    """The SDK's streamed message adds `index` to each call."""
    assert isinstance(msg, dict)
    calls = [{k: v for k, v in c.items() if k != "index"} for c in msg.get("tool_calls", [])]
    return {**msg, "tool_calls": calls} if calls else msg


def test_the_streamed_message_equals_the_non_streamed_one() -> None:
    cases = [
        [*agent_turn(), Event(10, "done", done=DONE)],
        [
            delta(1, "refusal", "I can't "),
            delta(2, "refusal", "help."),
            Event(3, "done", done=DONE),
        ],
        [call(1, 0, "c1", "f"), Event(2, "done", done=DONE)],
        [
            delta(1, "reasoning_redacted", "xx"),
            delta(2, "token", "Hi"),
            Event(3, "done", done=DONE),
        ],
        [Event(1, "done", done=DONE)],
    ]
    for events in cases:
        streamed = without_stream_keys(message(sdk_final(events)))
        plain = message(body_of(events))
        assert isinstance(plain, dict)
        body = {k: v for k, v in plain.items() if v is not None}
        assert streamed == body


def test_a_refusal_starts_with_null_content_and_the_sdk_reports_it() -> None:
    events = [
        delta(1, "refusal", "I'm sorry"),
        delta(2, "refusal", "."),
        Event(3, "done", done=DONE),
    ]
    parser = SSEParser()
    parser.feed(OpenAIWire(META, include_usage=False).encode(events))
    first = json.loads(parser.events[0].data)
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": None, "refusal": None}
    assert message(sdk_final(events)) == {"role": "assistant", "refusal": "I'm sorry."}


def test_signatures_and_redacted_thinking_write_no_openai_chunk() -> None:
    wire = OpenAIWire(META, include_usage=False)
    assert wire.encode([delta(5, "reasoning_signature", "sig")]) == b""
    assert wire.encode([delta(6, "reasoning_redacted", "data")]) == b""


def test_an_arguments_fragment_is_the_chunk_openai_sends() -> None:
    """Byte for byte the recorded stream's fragment chunk, but for its id and fingerprint."""
    wire = OpenAIWire(
        StreamMeta("S" * 22, "gpt-4o-2024-08-06", 1727346178, ""), include_usage=False
    )
    block = wire.encode([delta(3, "tool_call_delta", '{"ci', 0)])
    recorded = (
        b'{"id":"chatcmpl-SSSSSSSSSSSSSSSSSSSSSS","object":"chat.completion.chunk",'
        b'"created":1727346178,"model":"gpt-4o-2024-08-06","system_fingerprint":null,'
        b'"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":'
        b'"{\\"ci"}}]},"logprobs":null,"finish_reason":null}]}'
    )
    assert block == b"id: " + b"S" * 22 + b":3\ndata: " + recorded + b"\n\n"
    assert delta_block(3) == block


def delta_block(seq: int) -> bytes:
    """The same fragment through the general path (as an event 1 would take it)."""
    wire = OpenAIWire(
        StreamMeta("S" * 22, "gpt-4o-2024-08-06", 1727346178, ""), include_usage=False
    )
    event = delta(seq, "tool_call_delta", '{"ci', 0)
    return b"id: %s:%d\ndata: %s\n\n" % (
        b"S" * 22,
        seq,
        wire._choice(delta_of(event), b"null"),
    )

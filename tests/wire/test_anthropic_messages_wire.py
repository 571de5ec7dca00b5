"""The Anthropic Messages encoding, tested without sockets: what the official SDK
accumulates from the stream equals the non-streaming message; ids are last, unique,
and a cut at any byte resumes exactly."""

from __future__ import annotations

import json
from typing import Any

import pytest
from anthropic.lib.streaming._messages import accumulate_event
from hypothesis import given
from hypothesis import strategies as st

from app.core.events import Done, Event, EventKind, Failure, StreamMeta, ToolCall, Usage
from app.sse import parse_event_id
from app.wire.anthropic_message import MessageBuilder
from app.wire.anthropic_messages import AnthropicWire
from tests.support.sse_parser import SSEEvent, SSEParser

META = StreamMeta("abcdefghijklmnopqrstuv", "anthropic/claude-test", 1_700_000_000, "")
SID = META.stream_id


def events_of(*specs: tuple[EventKind, str] | Event, usage: Usage | None = None) -> list[Event]:
    out: list[Event] = []
    for spec in specs:
        seq = len(out) + 1
        if isinstance(spec, Event):
            spec.seq = seq
            out.append(spec)
        else:
            out.append(Event(seq, spec[0], spec[1]))
    done = Done("stop", usage or Usage(11, 7), None, None)
    out.append(Event(len(out) + 1, "done", done=done))
    return out


def call(index: int, call_id: str, name: str) -> Event:
    return Event(0, "tool_call", call=ToolCall(index, call_id, name))


def fragment(index: int, text: str) -> Event:
    return Event(0, "tool_call_delta", text, index=index)


TEXT = events_of(("token", "Hel"), ("token", "lo"), ("token", "!"))
TOOLS = events_of(
    ("token", "Let me look."),
    call(0, "toolu_A", "get_weather"),
    fragment(0, '{"loc'),
    fragment(0, 'ation": "Paris"}'),
    call(1, "call_B", "get_time"),
    fragment(1, '{"tz": "CET"}'),
    usage=Usage(514, 165),
)
THINKING = events_of(
    ("reasoning", "Let me think"),
    ("reasoning", " step by step."),
    ("reasoning_signature", "EqQBCkYIARgCKkBsig+/=="),
    ("reasoning_redacted", "EmwKAhgBEgy3va3pzix/LafPsn4a"),
    ("reasoning", "Second thoughts."),
    ("reasoning_signature", "Zm9vYmFy"),
    ("token", "The answer is 4."),
    usage=Usage(30, 90, cached_tokens=12),
)
REFUSAL = events_of(("refusal", "I can't "), ("refusal", "help with that."))
CASES = {"text": TEXT, "tools": TOOLS, "thinking": THINKING, "refusal": REFUSAL}


def encode(events: list[Event]) -> bytes:
    wire = AnthropicWire(META)
    return wire.opening(None) + b"".join(wire.encode([e]) for e in events)


def parse(body: bytes) -> list[SSEEvent]:
    parser = SSEParser()
    parser.feed(body)
    return parser.events


def accumulate(events: list[SSEEvent]) -> dict[str, Any]:
    """What `messages.stream()` accumulates: the SDK's own accumulator."""
    snapshot = None
    buffers: dict[int, bytes] = {}
    for event in events:
        if event.event in ("ping", "message_stop"):
            continue
        assert event.event == json.loads(event.data)["type"]
        snapshot = accumulate_event(
            event=json.loads(event.data), current_snapshot=snapshot, json_bufs=buffers
        )
    assert snapshot is not None
    dumped: dict[str, Any] = snapshot.model_dump(mode="json", exclude_none=True)
    return dumped


def built(events: list[Event]) -> dict[str, Any]:
    builder = MessageBuilder()
    builder.feed(events[:-1])
    assert events[-1].done is not None
    message = builder.message(META, events[-1].done)
    dumped: dict[str, Any] = json.loads(json.dumps(message))
    return dumped


def without_nones(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: without_nones(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nones(v) for v in value]
    return value


@pytest.mark.parametrize("name", list(CASES))
def test_sdk_accumulation_equals_the_non_streaming_message(name: str) -> None:
    events = CASES[name]
    streamed = accumulate(parse(encode(events)))
    assert streamed == without_nones(built(events))


def test_tool_calls_become_tool_use_blocks_with_the_upstream_ids_and_parsed_inputs() -> None:
    content = built(TOOLS)["content"]
    assert [block["type"] for block in content] == ["text", "tool_use", "tool_use"]
    assert (content[1]["id"], content[1]["name"]) == ("toolu_A", "get_weather")
    assert content[1]["input"] == {"location": "Paris"}
    assert (content[2]["id"], content[2]["input"]) == ("call_B", {"tz": "CET"})
    assert built(TOOLS)["stop_reason"] == "end_turn"


def test_signatures_and_redacted_data_pass_byte_for_byte_and_end_their_block() -> None:
    content = built(THINKING)["content"]
    assert [block["type"] for block in content] == [
        "thinking",
        "redacted_thinking",
        "thinking",
        "text",
    ]
    assert content[0] == {
        "type": "thinking",
        "thinking": "Let me think step by step.",
        "signature": "EqQBCkYIARgCKkBsig+/==",
    }
    assert content[1]["data"] == "EmwKAhgBEgy3va3pzix/LafPsn4a"
    assert content[2]["signature"] == "Zm9vYmFy"


def test_usage_reported_at_the_end_is_in_message_delta() -> None:
    events = parse(encode(THINKING))
    start = json.loads(events[0].data)
    assert start["message"]["usage"] == {"input_tokens": 0, "output_tokens": 0}
    delta = json.loads(next(e.data for e in events if e.event == "message_delta"))
    assert delta["usage"] == {
        "input_tokens": 30,
        "output_tokens": 90,
        "cache_read_input_tokens": 12,
    }
    assert delta["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}


def test_a_refusal_is_text_with_stop_reason_refusal() -> None:
    message = built(REFUSAL)
    assert message["content"] == [{"type": "text", "text": "I can't help with that."}]
    assert message["stop_reason"] == "refusal"


def test_the_sequence_is_anthropics() -> None:
    names = [e.event for e in parse(encode(TOOLS))]
    assert names == [
        "message_start",
        "ping",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]


def test_a_mid_stream_failure_is_an_error_event_and_nothing_after() -> None:
    failure = Event(3, "error", failure=Failure("upstream_error", "upstream: Overloaded", True))
    events = [Event(1, "token", "a"), Event(2, "token", "b"), failure]
    parsed = parse(encode(events))
    assert parsed[-1].event == "error"
    assert json.loads(parsed[-1].data) == {
        "type": "error",
        "error": {"type": "api_error", "message": "upstream: Overloaded"},
    }
    assert "message_delta" not in [e.event for e in parsed]


@pytest.mark.parametrize("name", list(CASES))
def test_every_block_but_pings_ends_with_a_unique_id(name: str) -> None:
    body = encode(CASES[name])
    ids = []
    for block in body.split(b"\n\n")[:-1]:
        lines = block.split(b"\n")
        if lines[0] == b"event: ping":
            assert not any(line.startswith(b"id:") for line in lines)
            continue
        assert lines[-1].startswith(b"id: "), block
        assert sum(line.startswith(b"id:") for line in lines) == 1
        ids.append(lines[-1])
    assert ids[0] == b"id: %s:0" % SID.encode()
    assert len(ids) == len(set(ids))


def resumed(events: list[Event], last_id: str) -> bytes:
    """What a resumed response writes after `last_id`, as the door builds it: the
    events before the resume point's event replayed into the state, then the rest."""
    start = parse_event_id(last_id)
    seq, part = start.seq, start.part
    wire = AnthropicWire(META)
    assert wire.opening(start) == b""
    if seq == 0:
        return wire.encode(events)
    for event in events[: seq - 1]:
        wire.skip(event)
    return wire.rest_of(events[seq - 1], part) + wire.encode(events[seq:])


def content(events: list[SSEEvent]) -> list[tuple[str, str]]:
    return [(e.event, e.data) for e in events if e.event != "ping"]


@pytest.mark.parametrize("name", list(CASES))
def test_a_cut_at_any_byte_resumes_exactly(name: str) -> None:
    events = CASES[name]
    body = encode(events)
    whole = content(parse(body))
    for cut in range(len(body) + 1):
        held = parse(body[:cut])
        # By the WHATWG rules the id of a block takes effect when the block is dispatched.
        if not held or held[-1].id is None:
            continue  # nothing dispatched yet: the client holds no resume point
        rest = parse(resumed(events, held[-1].id))
        assert content(held) + content(rest) == whole, cut


@given(st.lists(st.text(min_size=1), min_size=1, max_size=6))
def test_any_text_round_trips_through_a_spec_parser(parts: list[str]) -> None:
    events = events_of(*(("token", part) for part in parts))
    message = accumulate(parse(encode(events)))
    assert message["content"] == [{"type": "text", "text": "".join(parts)}]

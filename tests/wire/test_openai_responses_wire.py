"""app/wire/openai_responses.py: log events as OpenAI Responses stream events.

The recorded OpenAI Responses stream is the reference for the event order and
each event's keys; the resume properties (starting_after, Last-Event-ID at any
byte) are checked over arbitrary logs with a spec-conformant SSE parser.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.core.events import Done, Event, Failure, FinishReason, StreamMeta, Usage, token
from app.errors import BadLastEventId
from app.sse import EventId, parse_event_id
from app.wire.openai_responses import ResponsesWire
from app.wire.responses_fold import ResponseFold
from app.wire.responses_object import ECHO_FIELDS, ResponseHead, to_object
from tests.support.resume import written_after
from tests.support.sse_parser import SSEEvent, SSEParser
from tests.support.typed import agent_turn, delta, typed_events

FIXTURES = Path(__file__).parent.parent / "fixtures" / "upstream"
SID = "AAAAAAAAAAAAAAAAAAAAAA"
ECHO = tuple((name, None) for name in ECHO_FIELDS)


def head(background: bool = False) -> ResponseHead:
    return ResponseHead(SID, 1771881597, "sim/echo", background, ECHO)


def log_of(texts: list[str], end: FinishReason | Failure = "stop") -> list[Event]:
    events = [token(i, text) for i, text in enumerate(texts, start=1)]
    seq = len(events) + 1
    if isinstance(end, Failure):
        events.append(Event(seq, "error", failure=end))
    else:
        done = Done(end, Usage(15, len(texts)), None, None)
        events.append(Event(seq, "done", done=done))
    return events


def encode(
    events: list[Event],
    start: EventId | None = None,
    background: bool = False,
    starting_after: int = -1,
) -> bytes:
    """The body of a response on the Responses wire after `start` or
    `starting_after`, as the door opens it (b"" for a 204)."""
    wire = ResponsesWire(head(background), starting_after)
    meta = StreamMeta(SID, "sim/echo", 1771881597, "")
    return written_after(meta, events, wire, start) or b""


def parse(body: bytes) -> list[SSEEvent]:
    parser = SSEParser()
    parser.feed(body)
    return parser.events


def payloads(body: bytes) -> list[dict[str, object]]:
    return [json.loads(e.data) for e in parse(body)]


def test_a_text_stream_follows_openais_event_order() -> None:
    recorded = [json.loads(e.data)["type"] for e in parse(_fixture("openai-responses-stream.sse"))]
    texts = ["2", " +", " ", "2", " equals", " ", "4", "."]
    ours = [p["type"] for p in payloads(encode(log_of(texts), background=True))]
    assert ours == recorded


def test_every_event_has_the_recorded_keys() -> None:
    recorded = {}
    for event in parse(_fixture("openai-responses-stream.sse")):
        payload = json.loads(event.data)
        recorded[payload["type"]] = payload
    texts = ["2", " +", " ", "2", " equals", " ", "4", "."]
    for payload in payloads(encode(log_of(texts), background=True)):
        expected = recorded[str(payload["type"])]
        assert set(payload) == set(expected)
        if "response" in payload:
            assert isinstance(payload["response"], dict)
            assert set(payload["response"]) == set(expected["response"])


def test_sequence_numbers_count_from_zero_without_gaps() -> None:
    numbers = [p["sequence_number"] for p in payloads(encode(log_of(["a", "b", "c"])))]
    assert numbers == list(range(len(numbers)))


def test_the_completed_response_carries_the_text_and_usage() -> None:
    last = payloads(encode(log_of(["Hel", "lo"])))[-1]
    assert last["type"] == "response.completed"
    response = last["response"]
    assert isinstance(response, dict)
    assert response["status"] == "completed"
    assert response["output"][0]["content"][0]["text"] == "Hello"
    assert response["usage"]["input_tokens"] == 15
    assert response["usage"]["output_tokens"] == 2
    assert response["usage"]["total_tokens"] == 17


def test_the_token_limit_ends_with_response_incomplete() -> None:
    events = payloads(encode(log_of(["a"], "length")))
    assert events[-1]["type"] == "response.incomplete"
    response = events[-1]["response"]
    assert isinstance(response, dict)
    assert response["incomplete_details"] == {"reason": "max_output_tokens"}
    assert events[-2]["item"]["status"] == "incomplete"  # type: ignore[index]


def test_an_upstream_error_is_an_error_event_then_response_failed() -> None:
    failure = Failure("upstream_error", "boom", True)
    events = payloads(encode(log_of(["a"], failure)))
    assert [e["type"] for e in events[-2:]] == ["error", "response.failed"]
    assert events[-2]["error"] == {
        "type": "upstream_error",
        "code": "upstream_error",
        "message": "boom",
        "param": None,
    }
    response = events[-1]["response"]
    assert isinstance(response, dict)
    assert response["status"] == "failed"
    assert response["error"] == {"code": "upstream_error", "message": "boom"}


def test_a_cancel_ends_with_a_cancelled_response_and_no_error_event() -> None:
    failure = Failure("cancelled", "the stream was cancelled", False)
    events = payloads(encode(log_of(["a"], failure)))
    assert events[-1]["type"] == "response.failed"
    assert "error" not in [e["type"] for e in events]
    response = events[-1]["response"]
    assert isinstance(response, dict)
    assert response["status"] == "cancelled"


def test_a_background_response_starts_queued() -> None:
    events = payloads(encode(log_of(["a"]), background=True))
    assert [e["type"] for e in events[:3]] == [
        "response.created",
        "response.queued",
        "response.in_progress",
    ]
    assert events[0]["response"]["status"] == "queued"  # type: ignore[index]


def test_the_id_is_the_last_field_and_no_two_blocks_share_one() -> None:
    body = encode(log_of(["a", "b"]))
    blocks = [b for b in body.split(b"\n\n") if b]
    assert all(block.split(b"\n")[-1].startswith(b"id: ") for block in blocks)
    ids = [block.split(b"\n")[-1] for block in blocks]
    assert len(set(ids)) == len(ids)


def test_readers_share_the_bytes_of_a_token() -> None:
    events = log_of(["a", "b", "c"])
    first = encode(events)
    cached = events[2].responses
    assert cached is not None
    assert encode(events) == first
    assert events[2].responses is cached


def test_the_fold_and_the_stream_agree_on_the_response() -> None:
    events = [*agent_turn(), Event(10, "done", done=Done("tool_calls", Usage(9, 9), None, None))]
    streamed = payloads(encode(events))[-1]["response"]
    fold = ResponseFold(SID)
    fold.add_all(events)
    assert to_object(head(), fold) == streamed


def test_an_agent_turn_is_reasoning_a_message_and_two_function_calls() -> None:
    events = [*agent_turn(), Event(10, "done", done=Done("tool_calls", Usage(9, 9), None, None))]
    body = payloads(encode(events))
    output = body[-1]["response"]["output"]  # type: ignore[index]
    assert [item["type"] for item in output] == [
        "reasoning",
        "message",
        "function_call",
        "function_call",
    ]
    assert output[0]["summary"] == [{"type": "summary_text", "text": "The user wants the weather."}]
    assert output[0]["encrypted_content"] == "EqQBCgIYAhIM1gbcDa9GJwZA2b3h=="
    assert output[1]["content"][0]["text"] == "Let me check."
    assert [(i["call_id"], i["name"], i["arguments"]) for i in output[2:]] == [
        ("call_a", "get_weather", '{"city": "Paris"}'),
        ("call_b", "get_time", '{"tz": "Europe/Paris"}'),
    ]
    kinds = [str(p["type"]) for p in body]
    assert kinds.count("response.reasoning_summary_text.delta") == 2
    assert kinds.count("response.function_call_arguments.delta") == 3
    assert kinds.count("response.function_call_arguments.done") == 2
    assert kinds.count("response.output_item.done") == 4


def test_redacted_thinking_is_a_reasoning_item_with_its_data() -> None:
    events = [delta(1, "reasoning_redacted", "opaque=="), token(2, "Hi")]
    events.append(Event(3, "done", done=Done("stop", Usage(1, 1), None, None)))
    output = payloads(encode(events))[-1]["response"]["output"]  # type: ignore[index]
    assert output[0] == {
        "id": f"rs_{SID}_0",
        "type": "reasoning",
        "summary": [],
        "encrypted_content": "opaque==",
    }
    assert output[1]["content"][0]["text"] == "Hi"


def test_signed_thinking_without_text_has_one_empty_summary_part_unlike_redacted() -> None:
    events = [delta(1, "reasoning_signature", "sig=="), token(2, "Hi")]
    events.append(Event(3, "done", done=Done("stop", Usage(1, 1), None, None)))
    body = payloads(encode(events))
    assert body[-1]["response"]["output"][0] == {  # type: ignore[index]
        "id": f"rs_{SID}_0",
        "type": "reasoning",
        "summary": [{"type": "summary_text", "text": ""}],
        "encrypted_content": "sig==",
    }
    kinds = [str(p["type"]) for p in body]
    assert kinds.count("response.reasoning_summary_part.added") == 1
    assert kinds.count("response.reasoning_summary_part.done") == 1


def test_a_refusal_is_a_refusal_part_of_the_message() -> None:
    events = [delta(1, "refusal", "I can"), delta(2, "refusal", "not.")]
    events.append(Event(3, "done", done=Done("stop", Usage(1, 2), None, None)))
    body = payloads(encode(events))
    assert [p["type"] for p in body if "refusal" in str(p["type"])] == [
        "response.refusal.delta",
        "response.refusal.delta",
        "response.refusal.done",
    ]
    output = body[-1]["response"]["output"]  # type: ignore[index]
    assert output[0]["content"] == [{"type": "refusal", "refusal": "I cannot."}]


def test_a_malformed_last_event_id_is_refused() -> None:
    for value in ("nope", f"{SID}:x", f"{SID}:1.x", "short:1", f"{SID}:03", f"{SID}:3.0"):
        with pytest.raises(BadLastEventId):
            parse_event_id(value)


def test_a_part_the_opening_does_not_have_is_refused() -> None:
    events = log_of(["a"])
    assert encode(events, EventId(SID, 0, 1)) != b""  # created, then in_progress
    with pytest.raises(BadLastEventId):
        encode(events, EventId(SID, 0, 2))
    assert encode(events, EventId(SID, 0, 2), background=True) != b""  # created, queued, …


def test_a_group_opens_with_the_events_id_and_numbers_its_later_blocks() -> None:
    parser = SSEParser()
    ids = []
    for block in encode(log_of(["a", "b"])).split(b"\n\n")[:-1]:
        parser.feed(block + b"\n\n")
        ids.append(parser.resume_id)
    assert ids == [
        f"{SID}:0",  # response.created
        f"{SID}:0.1",  # response.in_progress
        f"{SID}:1",  # output_item.added
        f"{SID}:1.1",  # content_part.added
        f"{SID}:1.2",  # the first delta
        f"{SID}:2",  # the second delta
        f"{SID}:3",  # output_text.done
        f"{SID}:3.1",
        f"{SID}:3.2",
        f"{SID}:3.3",  # response.completed
    ]


ENDS: st.SearchStrategy[FinishReason | Failure] = st.sampled_from(
    ["stop", "length", Failure("upstream_error", "x", True), Failure("cancelled", "c", False)]
)


@st.composite
def typed_logs(draw: st.DrawFn) -> tuple[list[Event], bool]:
    """Any typed log with a terminal event, and whether the response is a background one."""
    events = draw(typed_events()) if draw(st.booleans()) else []
    end = draw(ENDS)
    seq = len(events) + 1
    if isinstance(end, Failure):
        events.append(Event(seq, "error", failure=end))
    else:
        events.append(Event(seq, "done", done=Done(end, Usage(1, seq), None, None)))
    return events, draw(st.booleans())


@given(typed_logs(), st.integers(min_value=-1, max_value=120))
def test_starting_after_gives_exactly_the_events_after_it(
    case: tuple[list[Event], bool], after: int
) -> None:
    events, background = case
    everything = payloads(encode(events, background=background))
    rest = payloads(encode(events, background=background, starting_after=after))
    assert rest == [p for p in everything if int(str(p["sequence_number"])) > after]


@given(typed_logs(), st.data())
def test_a_cut_at_any_byte_resumes_by_last_event_id_without_loss_or_repeat(
    case: tuple[list[Event], bool], data: st.DataObject
) -> None:
    events, background = case
    body = encode(events, background=background)
    cut = data.draw(st.integers(min_value=0, max_value=len(body)))
    parser = SSEParser()
    parser.feed(body[:cut])
    held = [json.loads(e.data) for e in parser.events]
    if parser.resume_id is None:
        rest = payloads(encode(events, background=background))
    else:
        at = parse_event_id(parser.resume_id)
        rest = payloads(encode(events, at, background=background))
    assert held + rest == payloads(body)


@given(typed_logs())
def test_sequence_numbers_have_no_gaps_and_every_item_closes(
    case: tuple[list[Event], bool],
) -> None:
    events, background = case
    body = payloads(encode(events, background=background))
    assert [p["sequence_number"] for p in body] == list(range(len(body)))
    added = [int(str(p["output_index"])) for p in body if p["type"] == "response.output_item.added"]
    done = [int(str(p["output_index"])) for p in body if p["type"] == "response.output_item.done"]
    assert sorted(added) == sorted(done) == list(range(len(added)))


def _fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()

"""app/wire/openai.py: log events as OpenAI's own `chat.completion.chunk` stream.

The recorded OpenAI stream is the reference: encoding the same answer under
the same id, created and model gives the same data lines, byte for byte,
except what Sluice deliberately does not invent (a system fingerprint, and
usage details it cannot know).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.core.events import Done, Event, Failure, FinishReason, StreamMeta, Usage, token
from app.errors import BadLastEventId
from app.sse import EventId
from app.wire.completion import Answer, completion_body
from app.wire.openai import OpenAIWire
from tests.support.sse_parser import SSEEvent, SSEParser

FIXTURES = Path(__file__).parent.parent / "fixtures" / "upstream"
RECORDED = (FIXTURES / "openai-chat-stream.sse").read_bytes()
# The recorded stream's identity, so that the encoder's bytes can be compared.
META = StreamMeta("ABfw031mOJeYCSHe4yI2ZjOA6kMJL", "gpt-4o-2024-08-06", 1727346168, "")
SID = META.stream_id


def recorded_lines() -> list[bytes]:
    """The fixture's data lines as Sluice would write them: no fingerprint it
    cannot know, and no usage details it is not told."""
    body = RECORDED.replace(b'"system_fingerprint":"fp_5050236cbd"', b'"system_fingerprint":null')
    body = body.replace(b',"completion_tokens_details":{"reasoning_tokens":0}', b"")
    return [line for line in body.split(b"\n") if line.startswith(b"data: ")]


def recorded_texts() -> list[str]:
    texts = []
    for line in recorded_lines():
        if line == b"data: [DONE]":
            continue
        choices = json.loads(line[6:])["choices"]
        if choices and "content" in choices[0]["delta"] and "role" not in choices[0]["delta"]:
            texts.append(choices[0]["delta"]["content"])
    return texts


RECORDED_USAGE = Usage(14, 30)


def done(seq: int, finish: FinishReason = "stop") -> Event:
    return Event(seq, "done", done=Done(finish, RECORDED_USAGE, 183.2, 51.7))


def failure(seq: int) -> Event:
    return Event(seq, "error", failure=Failure("upstream_error", "it broke", True))


def answer(texts: list[str], finish: FinishReason = "stop") -> list[Event]:
    events = [token(i, text) for i, text in enumerate(texts, start=1)]
    return [*events, done(len(events) + 1, finish)]


def parse(body: bytes) -> list[SSEEvent]:
    parser = SSEParser()
    parser.feed(body)
    assert body.endswith(b"\n\n"), "the body ends with the blank line of its last block"
    return parser.events


def encode(events: list[Event], *, include_usage: bool = True) -> bytes:
    """A fresh response: the opening (role chunk), then the events."""
    wire = OpenAIWire(META, include_usage=include_usage)
    return wire.opening(None) + wire.encode(events)


def test_recorded_stream_is_reproduced_byte_for_byte() -> None:
    body = encode(answer(recorded_texts()))
    lines = [line for line in body.split(b"\n") if line.startswith(b"data: ")]
    assert lines == recorded_lines()


def test_every_block_has_its_event_id_next_to_its_data_line() -> None:
    texts = recorded_texts()
    body = encode(answer(texts))
    blocks = body.split(b"\n\n")
    assert blocks[-1] == b"", "the body ends with the blank line that dispatches the last block"
    for block in blocks[:-1]:
        lines = block.split(b"\n")
        assert len(lines) == 2
        assert lines[0].startswith(b"data: ")
        assert lines[1].startswith(f"id: {SID}:".encode()), "id is the last field"
    ids = [event.id for event in parse(body)]
    last = len(texts) + 1
    # the role chunk opens the response (:0); finish, usage and [DONE] are parts of the end
    assert ids == [
        f"{SID}:0",
        *(f"{SID}:{i}" for i in range(1, last)),
        f"{SID}:{last}",
        f"{SID}:{last}.1",
        f"{SID}:{last}.2",
    ]
    assert len(set(ids)) == len(ids), "no two blocks share an id"


def test_a_resumed_response_has_no_opening_so_no_block_lacks_data() -> None:
    wire = OpenAIWire(META, include_usage=False)
    assert wire.opening(EventId(SID, 0)) == b""
    assert wire.opening(EventId(SID, 5)) == b""


def test_resuming_inside_the_end_sends_the_parts_after_the_one_held() -> None:
    wire = OpenAIWire(META, include_usage=True)
    end = done(4)
    after_finish = parse(wire.rest_of(end, 0))
    assert [e.id for e in after_finish] == [f"{SID}:4.1", f"{SID}:4.2"]
    assert json.loads(after_finish[0].data)["usage"]["total_tokens"] == 44
    assert after_finish[1].data == "[DONE]"
    assert [e.data for e in parse(wire.rest_of(end, 1))] == ["[DONE]"]
    assert wire.rest_of(end, 2) == b""


def test_a_part_the_event_does_not_have_is_refused_naming_the_header() -> None:
    wire = OpenAIWire(META, include_usage=False)
    with pytest.raises(BadLastEventId) as info:
        wire.rest_of(done(4), 2)  # without usage the end has two parts: finish, [DONE]
    assert info.value.param == "Last-Event-ID"
    with pytest.raises(BadLastEventId):
        wire.rest_of(token(3, "x"), 1)


def test_without_include_usage_there_is_no_usage_chunk() -> None:
    events = parse(encode(answer(["Hi", " there"]), include_usage=False))
    payloads = [e.data for e in events]
    assert payloads[-1] == "[DONE]"
    assert events[-1].id == f"{SID}:3.1"
    chunks = [json.loads(p) for p in payloads[:-1]]
    assert all("usage" not in c for c in chunks)
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None, None, None, "stop"]
    assert chunks[-1]["choices"][0]["delta"] == {}


def test_usage_chunk_has_empty_choices_and_totals() -> None:
    events = parse(encode(answer(["a", "b"], "length")))
    usage = json.loads(events[-2].data)
    assert usage["choices"] == []
    assert usage["usage"] == {"prompt_tokens": 14, "completion_tokens": 30, "total_tokens": 44}
    assert json.loads(events[-3].data)["choices"][0]["finish_reason"] == "length"


def test_resumed_encoding_never_repeats_the_role_chunk() -> None:
    events = answer(["one", " two", " three"])
    wire = OpenAIWire(META, include_usage=False)
    resumed = parse(wire.opening(EventId(SID, 1)) + wire.encode(events[1:]))
    deltas = [json.loads(e.data)["choices"][0]["delta"] for e in resumed[:-1]]
    assert deltas == [{"content": " two"}, {"content": " three"}, {}]


def test_an_empty_answer_still_starts_with_the_role_chunk() -> None:
    events = parse(encode([done(1)], include_usage=False))
    assert [e.data for e in events][-1] == "[DONE]"
    deltas = [json.loads(e.data)["choices"][0]["delta"] for e in events[:-1]]
    assert deltas == [{"role": "assistant", "content": "", "refusal": None}, {}]
    assert [e.id for e in events] == [f"{SID}:0", f"{SID}:1", f"{SID}:1.1"]


def test_mid_stream_error_is_an_error_object_and_the_end() -> None:
    events = parse(encode([token(1, "Hi"), failure(2)]))
    assert len(events) == 3
    assert events[-1].id == f"{SID}:2"
    assert json.loads(events[-1].data) == {
        "error": {"message": "it broke", "type": "upstream_error", "param": None, "code": None}
    }
    assert all(e.data != "[DONE]" for e in events)


def test_an_error_as_first_event_follows_the_role_chunk() -> None:
    events = parse(encode([failure(1)]))
    assert len(events) == 2
    assert json.loads(events[0].data)["choices"][0]["delta"]["role"] == "assistant"
    assert "error" in json.loads(events[1].data)
    assert [e.id for e in events] == [f"{SID}:0", f"{SID}:1"]


def test_token_bytes_are_built_once_and_shared_by_every_reader() -> None:
    event = token(3, "shared")
    first = OpenAIWire(META, include_usage=True).encode([event])
    second = OpenAIWire(META, include_usage=False).encode([event])
    assert event.openai is first
    assert second is first


def test_done_encoding_is_not_cached_because_include_usage_differs() -> None:
    event = done(2)
    with_usage = OpenAIWire(META, include_usage=True).encode([event])
    without = OpenAIWire(META, include_usage=False).encode([event])
    assert event.openai is None
    assert with_usage.count(b"data: ") == 3
    assert without.count(b"data: ") == 2


def test_a_batch_encodes_as_its_events_one_after_another() -> None:
    events = answer(["x", "y", "z"])
    wire = OpenAIWire(META, include_usage=True)
    assert wire.encode(events) == b"".join(wire.encode([e]) for e in events)


texts = st.text(st.characters(exclude_categories=["Cs"]), min_size=1)


@given(st.lists(texts, min_size=1, max_size=5))
def test_any_text_round_trips_through_a_spec_parser(parts: list[str]) -> None:
    events = parse(encode(answer(parts), include_usage=False))
    contents = [json.loads(e.data)["choices"][0]["delta"].get("content") for e in events[1:-2]]
    assert contents == parts
    assert all("\n" not in e.data for e in events), "every payload is one data line"


def test_completion_body_has_openai_keys_in_order() -> None:
    body = completion_body(META, _answer("Hello"), Done("stop", Usage(3, 1), None, None))
    assert list(body) == [
        "id",
        "object",
        "created",
        "model",
        "choices",
        "usage",
        "system_fingerprint",
    ]
    assert body["id"] == f"chatcmpl-{SID}"
    assert body["object"] == "chat.completion"
    assert body["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hello", "refusal": None},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ]
    assert body["usage"] == {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}


def test_a_readers_own_ending_has_no_id_so_the_client_keeps_the_last_one() -> None:
    wire = OpenAIWire(META, include_usage=False)
    failure = Failure("log_lost", "gone", False)
    ending = Event(3, "error", failure=failure, unlogged=True)
    parser = SSEParser()
    parser.feed(wire.encode([token(3, "x"), ending]))
    assert [e.id for e in parser.events] == [f"{SID}:3", f"{SID}:3"]
    assert wire.encode([ending]).count(b"id:") == 0


def _answer(text: str) -> Answer:
    answer = Answer()
    answer.add(Event(1, "token", text))
    return answer

"""A response record as JSON, the form Redis keeps it in: every field of the
conversation comes back, the reasoning of its assistant turns byte for byte. Pure."""

from __future__ import annotations

import orjson

from app.providers.base import CalledTool, Message, RedactedThinking, Thinking
from app.resume.responses import ResponseRecord
from app.sse import new_stream_id
from app.wire.responses_object import ECHO_FIELDS, ResponseHead

HEAD = ResponseHead(new_stream_id(), 1771881597, "anthropic/claude", False, ())
HISTORY = (
    Message("user", "Weather?", images=("https://example.com/a.png",)),
    Message(
        "assistant",
        "Checking.",
        tool_calls=(CalledTool("toolu_1", "get_weather", '{"city": "Paris"}'),),
        reasoning=(Thinking("Think.", "EqQB/+=="), RedactedThinking("EmwK==")),
    ),
    Message("tool", "18 C", tool_call_id="toolu_1"),
)


def test_a_record_round_trips_with_its_turns_reasoning() -> None:
    head = ResponseHead(HEAD.stream_id, 1771881597, "m", True, tuple((n, 1) for n in ECHO_FIELDS))
    record = ResponseRecord(head, "owner", True, HISTORY)
    assert ResponseRecord.from_json(record.to_json()) == record


def test_a_record_written_before_turns_carried_reasoning_reads_as_none() -> None:
    data = orjson.loads(ResponseRecord(HEAD, "owner", True, HISTORY).to_json())
    for message in data["history"]:
        del message["reasoning"]
    record = ResponseRecord.from_json(orjson.dumps(data))
    assert [m.reasoning for m in record.history] == [(), (), ()]
    assert record.history[1].tool_calls == HISTORY[1].tool_calls

"""A reader's own ending (`log_lost`, `unavailable`: its resume store failed it)
is in no log. Every wire frames it through the framing layer without an `id:`
line, so it repeats no id already written and the client keeps the id of the
last block it really got; each door says it in its own error vocabulary."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncGenerator, Sequence

import pytest

from app.core.events import Event, Failure, StreamMeta, token
from app.errors import LogLost, Unavailable
from app.sse import EventId, frame
from app.streaming.opening import open_response
from app.wire.anthropic_messages import AnthropicWire
from app.wire.framing import FramedWire
from app.wire.native import NativeWire
from app.wire.openai import OpenAIWire
from app.wire.openai_responses import ResponsesWire
from app.wire.responses_object import ECHO_FIELDS, ResponseHead
from tests.support.sse_parser import SSEEvent, SSEParser

SID = "AAAAAAAAAAAAAAAAAAAAAA"
META = StreamMeta(SID, "sim/echo", 1727346168, "")
ECHO = tuple((name, None) for name in ECHO_FIELDS)


def wires() -> dict[str, FramedWire]:
    return {
        "native": NativeWire(SID, 1000),
        "openai": OpenAIWire(META, include_usage=False),
        "anthropic": AnthropicWire(META),
        "responses": ResponsesWire(ResponseHead(SID, 1771881597, "sim/echo", False, ECHO)),
    }


def ending(seq: int, type_: str, retryable: bool) -> Event:
    return Event(seq, "error", failure=Failure(type_, "gone", retryable), unlogged=True)


def stream(wire: FramedWire, end: Event) -> tuple[bytes, list[SSEEvent], bytes]:
    """The whole response; its events; the bytes of the ending alone."""
    head = wire.opening(None) + wire.encode([token(1, "a"), token(2, "b")])
    tail = wire.encode([end])
    parser = SSEParser()
    parser.feed(head + tail)
    return head + tail, parser.events, tail


def test_frame_without_an_id_writes_no_id_line() -> None:
    assert frame(None, b"{}", event=b"error") == b"event: error\ndata: {}\n\n"
    assert frame(None, b"{}") == b"data: {}\n\n"


@pytest.mark.parametrize("name", ["native", "openai", "anthropic", "responses"])
@pytest.mark.parametrize(("type_", "retryable"), [("log_lost", False), ("unavailable", True)])
def test_a_readers_ending_has_no_id_and_the_client_keeps_the_last(
    name: str, type_: str, retryable: bool
) -> None:
    whole, events, tail = stream(wires()[name], ending(2, type_, retryable))
    assert tail
    assert b"id:" not in tail
    ids = [line for line in whole.split(b"\n") if line.startswith(b"id:")]
    assert len(ids) == len(set(ids))  # no id written twice
    assert events[-1].id == f"{SID}:2"  # the id of the last event the client got


def test_anthropic_says_api_error_or_overloaded_error() -> None:
    for type_, retryable, expected in [
        ("log_lost", False, "api_error"),
        ("unavailable", True, "overloaded_error"),
    ]:
        _, events, _ = stream(wires()["anthropic"], ending(2, type_, retryable))
        last = events[-1]
        assert last.event == "error"
        assert json.loads(last.data) == {
            "type": "error",
            "error": {"type": expected, "message": "gone"},
        }


@pytest.mark.parametrize("type_", ["log_lost", "unavailable"])
def test_responses_says_error_then_response_failed(type_: str) -> None:
    _, events, _ = stream(wires()["responses"], ending(2, type_, type_ == "unavailable"))
    error, failed = events[-2], events[-1]
    assert (error.event, failed.event) == ("error", "response.failed")
    assert json.loads(error.data)["error"]["code"] == type_
    body = json.loads(failed.data)
    assert body["response"]["status"] == "failed"
    assert body["response"]["error"]["code"] == type_
    numbers = [json.loads(e.data)["sequence_number"] for e in events]
    assert numbers == list(range(len(numbers)))


class FailingSource:
    """A live stream (tail: `written` events, no end) whose reader gets `got`
    events, then its store fails it: its own ending, at the seq it got to."""

    def __init__(self, written: int, got: int, type_: str) -> None:
        self._written, self._got, self._type = written, got, type_

    @property
    def meta(self) -> StreamMeta:
        return META

    async def tail(self) -> tuple[int, bool]:
        return self._written, False

    async def follow(self, after: int, idle_s: float) -> AsyncGenerator[Sequence[Event], None]:
        for seq in range(after + 1, self._got + 1):
            yield [token(seq, "x")]
        yield [ending(max(after, self._got), self._type, self._type == "unavailable")]


async def written(source: FailingSource, wire: FramedWire, start: EventId) -> bytes:
    opening = await open_response(source, wire, start, 1.0)
    assert opening is not None
    async with contextlib.aclosing(opening.batches) as batches:
        return opening.head + b"".join([wire.encode(batch) async for batch in batches])


@pytest.mark.parametrize("name", ["anthropic", "responses"])
async def test_a_replaying_wire_ahead_of_the_log_still_sends_the_ending(name: str) -> None:
    # The client read event 5 from the owner's memory; the store has 3 and fails.
    body = await written(FailingSource(3, 3, "log_lost"), wires()[name], EventId(SID, 5))
    assert b"log_lost" in body or b"api_error" in body
    assert b"id:" not in body


@pytest.mark.parametrize("name", ["native", "openai", "anthropic", "responses"])
@pytest.mark.parametrize(("type_", "error"), [("unavailable", Unavailable), ("log_lost", LogLost)])
async def test_an_ending_before_the_resume_point_is_an_error_status(
    name: str, type_: str, error: type[Exception]
) -> None:
    # The store fails the reader before it reaches the client's event 2.
    with pytest.raises(error):
        await written(FailingSource(4, 0, type_), wires()[name], EventId(SID, 2))

"""app/wire/framing.py: the id rule is the framing layer's, so any wire gets it.

A wire invented here (`Split`, writing each event as one to four blocks, as
future wires may) is checked with the real ones: in any encoded stream, ids
are unique, `id:` is the last field of every block, and for the id of every
block, what the wire sends after it is exactly the rest of the stream. The
last check runs every wire, Anthropic Messages and OpenAI Responses included,
through `open_response` itself, with a new encoder per response.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from app.core.events import Done, Event, Failure, StreamMeta, Usage, token
from app.sse import EventId, parse_event_id
from app.wire.anthropic_messages import AnthropicWire
from app.wire.framing import Block, FramedWire
from app.wire.native import NativeWire
from app.wire.openai import OpenAIWire
from app.wire.openai_responses import ResponsesWire
from app.wire.responses_object import ResponseHead
from tests.support.resume import written_after
from tests.support.sse_parser import SSEEvent, SSEParser
from tests.support.typed import typed_events

SID = "AAAAAAAAAAAAAAAAAAAAAA"


class Split(FramedWire):
    """A wire that writes a token of n characters as min(n, 4) blocks."""

    def opening(self, start: EventId | None) -> bytes:
        return b""

    def blocks(self, event: Event) -> Sequence[Block]:
        text = event.text or event.kind
        pieces = [text[i::4] for i in range(min(len(text), 4))] or [""]
        return [Block(f'"{piece}"'.encode(), b"piece") for piece in pieces]


def wires() -> list[FramedWire]:
    meta = StreamMeta(SID, "sim/echo", 1, "")
    return [
        Split(SID),
        NativeWire(SID, 1000),
        OpenAIWire(meta, include_usage=True),
        OpenAIWire(meta, include_usage=False),
    ]


def stream(texts: list[str], fails: bool) -> list[Event]:
    events = [token(i, text) for i, text in enumerate(texts, start=1)]
    seq = len(events) + 1
    if fails:
        return [*events, Event(seq, "error", failure=Failure("upstream_error", "x", True))]
    return [*events, Event(seq, "done", done=Done("stop", Usage(1, len(texts)), None, None))]


def block_ids(body: bytes) -> list[tuple[str, int]]:
    """Each block's id and where the block ends (after its blank line)."""
    found, start = [], 0
    while (end := body.find(b"\n\n", start)) >= 0:
        lines = body[start:end].split(b"\n")
        assert lines[-1].startswith(b"id: "), "id is the last field of every block"
        assert not any(line.startswith(b"id: ") for line in lines[:-1])
        found.append((lines[-1][4:].decode(), end + 2))
        start = end + 2
    assert start == len(body)
    return found


texts = st.lists(st.text(alphabet="abcdefgh ", max_size=9), max_size=5)


@given(texts, st.booleans())
def test_every_block_id_resumes_to_exactly_the_rest_on_every_wire(
    words: list[str], fails: bool
) -> None:
    events = stream(words, fails)
    for wire in wires():
        body = wire.encode(events)
        ids = block_ids(body)
        assert len({i for i, _ in ids}) == len(ids), "no two blocks share an id"
        for held, end in ids:
            point = parse_event_id(held)
            assert point.stream_id == SID
            event = events[point.seq - 1]
            rest = wire.rest_of(event, point.part) + wire.encode(events[point.seq :])
            assert rest == body[end:], (type(wire).__name__, held)


@given(st.text(), st.integers(min_value=1, max_value=2**40), st.text(min_size=1))
def test_the_cached_fast_path_is_the_framing_of_the_events_blocks(
    text: str, seq: int, model: str
) -> None:
    meta = StreamMeta(SID, model, 1, "")  # a model name may hold "%": templates escape it
    for wire in [NativeWire(SID, 1), OpenAIWire(meta, include_usage=False)]:
        event = token(seq, text + "%s%d%%")
        assert wire.encode([event]) == wire.framer.blocks(seq, wire.blocks(event))


def test_a_fresh_response_opens_with_an_id_naming_the_stream_on_the_native_wire() -> None:
    parser = SSEParser()
    parser.feed(NativeWire(SID, 1500).opening(None))
    assert (parser.resume_id, parser.retry, parser.events) == (f"{SID}:0", 1500, [])


def test_the_native_event_bytes_are_built_once_and_shared() -> None:
    event = token(1, "hi")
    first = NativeWire(SID, 1000).encode([event])
    assert NativeWire(SID, 2000).encode([event]) is first
    assert first == b'event: token\ndata: {"text":"hi"}\nid: ' + SID.encode() + b":1\n\n"


def fresh_wires() -> list[Callable[[], FramedWire]]:
    """A new encoder per response, as every door makes one: the native and Chat
    Completions wires, and the two whose blocks depend on the events before them."""
    meta = StreamMeta(SID, "sim/echo", 1, "")
    return [
        lambda: Split(SID),
        lambda: NativeWire(SID, 1000),
        lambda: OpenAIWire(meta, include_usage=True),
        lambda: AnthropicWire(meta),
        lambda: ResponsesWire(ResponseHead(SID, 1, "sim/echo", False, ())),
        lambda: ResponsesWire(ResponseHead(SID, 1, "sim/echo", True, ())),
    ]


def held_ids(body: bytes) -> list[tuple[str, int]]:
    """The id each block leaves a client holding, and how many events (pings
    aside) it has dispatched then; a block without an id (Anthropic's ping)
    leaves none."""
    parser = SSEParser()
    found, start = [], 0
    while (end := body.find(b"\n\n", start)) >= 0:
        parser.feed(body[start : end + 2])
        if parser.resume_id is not None and body[start:end].split(b"\n")[-1].startswith(b"id: "):
            found.append((parser.resume_id, len(shown(parser.events))))
        start = end + 2
    return found


def shown(events: list[SSEEvent]) -> list[tuple[str, str, str | None]]:
    """The events a client acts on (Anthropic's ping is a heartbeat)."""
    return [(e.event, e.data, e.id) for e in events if e.event != "ping"]


def parsed(body: bytes) -> list[SSEEvent]:
    parser = SSEParser()
    parser.feed(body)
    return parser.events


@settings(max_examples=30, deadline=None)
@given(typed_events(), st.booleans())
def test_on_every_wire_a_resume_after_any_block_is_exactly_the_rest(
    deltas: list[Event], fails: bool
) -> None:
    seq = len(deltas) + 1
    end = (
        Event(seq, "error", failure=Failure("upstream_error", "x", True))
        if fails
        else Event(seq, "done", done=Done("stop", Usage(1, seq), None, None))
    )
    events = [*deltas, end]
    meta = StreamMeta(SID, "sim/echo", 1, "")
    for make in fresh_wires():
        body = written_after(meta, events, make(), None)
        assert body is not None
        whole = shown(parsed(body))
        ids = held_ids(body)
        assert len({i for i, _ in ids}) == len(ids), "no two blocks share an id"
        for held, count in ids:
            rest = written_after(meta, events, make(), parse_event_id(held))
            assert shown(parsed(rest or b"")) == whole[count:], (type(make()).__name__, held)
            assert (rest is None) == (count == len(whole)), held

"""The Anthropic Messages encoding: typed log events as Anthropic's stream events
(`message_start`, `content_block_start` / `_delta` / `_stop`, `message_delta`,
`message_stop`, `ping`, `error`), in Anthropic's key order. Pure: no I/O.

Content blocks are built from the typed events: text (and a refusal's text) in `text`
blocks, reasoning in `thinking` blocks (a signature event is that block's
`signature_delta`, byte for byte), redacted reasoning in `redacted_thinking` blocks, a
tool call in a `tool_use` block with the upstream's call id and its argument fragments as
`input_json_delta`s. A block is opened by the first event that needs it and stopped by
the first event that does not (or by the terminal event), so one log event may be
written as up to three blocks: the previous block's stop, this block's start, its delta.

Ids. Every block of log event `seq` carries an id, as its last field: the first block of
the event `<stream_id>:<seq>`, the next ones `<stream_id>:<seq>.1` and `.2`. Each id names
the point just after its block: a client cut anywhere holds the id of the last block it
dispatched, and a resume after `<seq>.<part>` writes event `seq` from block `part + 1`,
then the events after it: nothing repeated, nothing skipped. `message_start` is the
first block of a new response, with `id: <stream_id>:0`, sent before the first token, so
that a cut before it resumes the same generation. Pings carry no id: they hold nothing
to repeat or to skip.

Strategy: which block an event goes in depends on the events before it, so the encoder
is a small state machine. A resumed response replays the events before its resume
point's event through `skip` (state only, nothing written), then writes the rest of that
event (`rest_of`) and what follows. A signature ends its thinking block: reasoning after
it opens a new one, as Anthropic streams two thinking blocks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import orjson

from app.core.events import Done, Event, Failure, StreamMeta, Usage
from app.errors import BadLastEventId
from app.wire.anthropic_errors import envelope, failure_type

BlockKind = Literal["text", "thinking", "redacted_thinking", "tool_use"]
PING = b'event: ping\ndata: {"type": "ping"}\n\n'
STOP_REASON = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}
# What each delta kind is written in.
_BLOCK_OF: dict[str, BlockKind] = {
    "token": "text",
    "refusal": "text",
    "reasoning": "thinking",
    "reasoning_signature": "thinking",
}
# `frame(b"content_block_delta", <a text_delta>, <id>)` as one template.
_TEXT_DELTA = (
    b'event: content_block_delta\ndata: {"type":"content_block_delta","index":%d,'
    b'"delta":{"type":"text_delta","text":%s}}\nid: %s%d\n\n'
)
_EMPTY_BLOCK = {
    "text": b'{"type":"text","text":""}',
    "thinking": b'{"type":"thinking","thinking":"","signature":""}',
}


def frame(name: bytes, data: bytes, event_id: bytes | None) -> bytes:
    """One SSE block: `event:`, `data:`, then `id:` last (orjson escapes every control
    character, so `data` is one line)."""
    if event_id is None:
        return b"event: %s\ndata: %s\n\n" % (name, data)
    return b"event: %s\ndata: %s\nid: %s\n\n" % (name, data, event_id)


def message_id(stream_id: str) -> str:
    return f"msg_{stream_id}"


def stop_reason(done: Done, refused: bool) -> str:
    """An OpenAI refusal ends with a plain stop: Anthropic says `refusal`."""
    if refused and done.finish_reason == "stop":
        return "refusal"
    return STOP_REASON.get(done.finish_reason, "end_turn")


def usage_payload(usage: Usage) -> dict[str, int]:
    payload = {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens}
    if usage.cached_tokens is not None:
        payload["cache_read_input_tokens"] = usage.cached_tokens
    return payload


def message_head(meta: StreamMeta) -> dict[str, object]:
    """The message as `message_start` announces it: no content yet. The counts are
    zero: a provider reports usage with its last event, and `message_delta` carries it."""
    return {
        "id": message_id(meta.stream_id),
        "type": "message",
        "role": "assistant",
        "content": [],
        "model": meta.model,
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 0, "output_tokens": 0},
    }


@dataclass(frozen=True, slots=True)
class Block:
    """One SSE block of the encoding, before framing."""

    name: bytes
    data: bytes


class BlockState:
    """Which content block is open, and which block each tool call went in."""

    __slots__ = ("count", "kind", "open", "refused", "tools")

    def __init__(self) -> None:
        self.count = 0  # blocks started so far; the next block's index
        self.open: int | None = None  # index of the open block
        self.kind: BlockKind | None = None
        self.tools: dict[int, int] = {}  # tool call index -> block index
        self.refused = False

    def blocks(self, event: Event) -> list[Block]:
        """The blocks of one log event, the state advanced past it."""
        kind = event.kind
        block = _BLOCK_OF.get(kind)
        if block is not None:
            self.refused = self.refused or kind == "refusal"
            out = self._ensure(block)
            out.append(self._delta(kind, event.text))
            if kind == "reasoning_signature":
                self.kind = None  # a signature ends its thinking: more reasoning is a new block
            return out
        if kind == "tool_call_delta":
            return [self._arguments(event)]
        if kind == "tool_call":
            assert event.call is not None
            out = self._close()
            start = {"type": "tool_use", "id": event.call.id, "name": event.call.name, "input": {}}
            self.tools[event.call.index] = self.count
            out.append(self._start("tool_use", orjson.dumps(start)))
            return out
        if kind == "reasoning_redacted":
            out = self._close()
            start = {"type": "redacted_thinking", "data": event.text}
            out.append(self._start("redacted_thinking", orjson.dumps(start)))
            return out
        if event.done is not None:
            return [*self._close(), *self._end(event.done)]
        assert event.failure is not None
        return [error_block(event.failure)]

    def _ensure(self, kind: BlockKind) -> list[Block]:
        if self.kind == kind and self.open is not None:
            return []
        out = self._close()
        out.append(self._start(kind, _EMPTY_BLOCK[kind]))
        return out

    def _start(self, kind: BlockKind, content_block: bytes) -> Block:
        index = self.count
        self.count += 1
        self.open, self.kind = index, kind
        data = b'{"type":"content_block_start","index":%d,"content_block":%s}'
        return Block(b"content_block_start", data % (index, content_block))

    def _close(self) -> list[Block]:
        if self.open is None:
            return []
        index, self.open, self.kind = self.open, None, None
        data = b'{"type":"content_block_stop","index":%d}' % index
        return [Block(b"content_block_stop", data)]

    def _delta(self, kind: str, text: str) -> Block:
        assert self.open is not None
        if kind == "reasoning":
            delta = b'{"type":"thinking_delta","thinking":%s}' % orjson.dumps(text)
        elif kind == "reasoning_signature":
            delta = b'{"type":"signature_delta","signature":%s}' % orjson.dumps(text)
        else:
            delta = b'{"type":"text_delta","text":%s}' % orjson.dumps(text)
        return _content_delta(self.open, delta)

    def _arguments(self, event: Event) -> Block:
        # Calls stream one after the other; a fragment for a call whose block was
        # stopped still names that block's index, which is where a client keeps it.
        index = self.tools.get(event.index, self.open if self.open is not None else 0)
        delta = b'{"type":"input_json_delta","partial_json":%s}' % orjson.dumps(event.text)
        return _content_delta(index, delta)

    def _end(self, done: Done) -> list[Block]:
        delta = {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason(done, self.refused), "stop_sequence": None},
            "usage": usage_payload(done.usage),
        }
        return [
            Block(b"message_delta", orjson.dumps(delta)),
            Block(b"message_stop", b'{"type":"message_stop"}'),
        ]


def _content_delta(index: int, delta: bytes) -> Block:
    data = b'{"type":"content_block_delta","index":%d,"delta":%s}' % (index, delta)
    return Block(b"content_block_delta", data)


def error_block(failure: Failure) -> Block:
    kind = failure_type(failure.type, failure.code)
    return Block(b"error", orjson.dumps(envelope(kind, failure.message)))


class AnthropicWire:
    """One response's encoder. `fresh`: a new response, which opens with
    `message_start`; a resumed one opens with what `resume_head` made of the event
    its resume point is in."""

    __slots__ = ("_fresh", "_head", "_meta", "_prefix", "_state")

    heartbeat = PING

    def __init__(self, meta: StreamMeta, *, fresh: bool) -> None:
        self._meta = meta
        self._prefix = meta.stream_id.encode() + b":"
        self._fresh = fresh
        self._head = b""
        self._state = BlockState()

    def preamble(self) -> bytes:
        if not self._fresh:
            return self._head
        start = orjson.dumps({"type": "message_start", "message": message_head(self._meta)})
        return frame(b"message_start", start, self._prefix + b"0") + PING

    def skip(self, event: Event) -> None:
        """An event the client holds whole: advance the state, write nothing."""
        self._state.blocks(event)

    def rest_of(self, event: Event, part: int) -> bytes:
        """The blocks of `event` after part `part`, which the client holds."""
        blocks = self._state.blocks(event)
        if part >= len(blocks):
            raise BadLastEventId(
                f"Last-Event-ID names part {part} of event {event.seq}, which has "
                f"{len(blocks)} part(s) on this endpoint",
                param="Last-Event-ID",
            )
        return self._framed(event.seq, blocks, part + 1)

    def resume_head(self, head: bytes) -> None:
        """What a resumed response opens with: the rest of its resume point's event
        and any event already written after it."""
        self._head = head

    def encode(self, events: Sequence[Event]) -> bytes:
        if len(events) == 1:
            return self._encode_event(events[0])
        return b"".join([self._encode_event(e) for e in events])

    def _encode_event(self, event: Event) -> bytes:
        state = self._state
        if event.kind == "token" and state.kind == "text":
            # The hot path: a token in the open text block is one block, written in
            # one formatting operation (exactly what `frame` writes for it).
            return _TEXT_DELTA % (state.open, orjson.dumps(event.text), self._prefix, event.seq)
        return self._framed(event.seq, state.blocks(event), 0)

    def _framed(self, seq: int, blocks: Sequence[Block], first: int) -> bytes:
        """Parts `first`... of event `seq`: part 0 has the id `<stream_id>:<seq>`, part
        p `<stream_id>:<seq>.<p>`."""
        prefix = self._prefix
        return b"".join(
            [
                frame(
                    b.name, b.data, b"%s%d.%d" % (prefix, seq, p) if p else b"%s%d" % (prefix, seq)
                )
                for p, b in enumerate(blocks)
                if p >= first
            ]
        )

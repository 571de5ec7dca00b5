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

Ids are the framing layer's (`app.wire.framing`): the first block of log event
`seq` is `<stream_id>:<seq>`, the next ones `<stream_id>:<seq>.1` and `.2`, each the
point just after its block, so a resume repeats nothing and skips nothing.
`message_start` is the opening of a new response, `<stream_id>:0`, sent before the
first token, so that a cut before it resumes the same generation. Pings carry no id:
they hold nothing to repeat or to skip.

Strategy: which block an event goes in depends on the events before it, so the encoder
is a small state machine (`replays`): a resumed response is shown the events before its
resume point's event (state only, nothing written), then writes the rest of that event
and what follows. A signature ends its thinking block: reasoning after
it opens a new one, as Anthropic streams two thinking blocks.
"""

from __future__ import annotations

from typing import Literal

import orjson

from app.core.events import Done, Event, Failure, StreamMeta, Usage
from app.sse import EventId, frame
from app.wire.anthropic_errors import envelope, failure_type
from app.wire.framing import Block, FramedWire

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
# A text delta's data with the text left out (`%%s`), for one block index (`%d`).
_TEXT_DELTA = b'{"type":"content_block_delta","index":%d,"delta":{"type":"text_delta","text":%%s}}'
_EMPTY_BLOCK = {
    "text": b'{"type":"text","text":""}',
    "thinking": b'{"type":"thinking","thinking":"","signature":""}',
}


def message_id(stream_id: str) -> str:
    return f"msg_{stream_id}"


def stop_reason(done: Done, refused: bool) -> str:
    """An Anthropic upstream's own reason where it said more than the finish
    reason (`stop_sequence`, `pause_turn`); an OpenAI refusal ends with a plain
    stop: Anthropic says `refusal`."""
    if done.stop is not None:
        return done.stop.reason
    if refused and done.finish_reason == "stop":
        return "refusal"
    return STOP_REASON.get(done.finish_reason, "end_turn")


def stop_sequence(done: Done) -> str | None:
    return None if done.stop is None else done.stop.sequence


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
        return Block(data % (index, content_block), b"content_block_start")

    def _close(self) -> list[Block]:
        if self.open is None:
            return []
        index, self.open, self.kind = self.open, None, None
        data = b'{"type":"content_block_stop","index":%d}' % index
        return [Block(data, b"content_block_stop")]

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
            "delta": {
                "stop_reason": stop_reason(done, self.refused),
                "stop_sequence": stop_sequence(done),
            },
            "usage": usage_payload(done.usage),
        }
        return [
            Block(orjson.dumps(delta), b"message_delta"),
            Block(b'{"type":"message_stop"}', b"message_stop"),
        ]


def _content_delta(index: int, delta: bytes) -> Block:
    data = b'{"type":"content_block_delta","index":%d,"delta":%s}' % (index, delta)
    return Block(data, b"content_block_delta")


def error_block(failure: Failure) -> Block:
    kind = failure_type(failure.type, failure.code)
    return Block(orjson.dumps(envelope(kind, failure.message)), b"error")


class AnthropicWire(FramedWire):
    """One response's encoder: a fresh response opens with `message_start`; every
    block goes through the framing layer."""

    __slots__ = ("_meta", "_state", "_text_deltas")

    heartbeat = PING
    replays = True

    def __init__(self, meta: StreamMeta) -> None:
        super().__init__(meta.stream_id)
        self._meta = meta
        self._state = BlockState()
        self._text_deltas: dict[int, bytes] = {}  # block index -> the framed template

    def opening(self, start: EventId | None) -> bytes:
        if start is not None:
            return b""  # the client holds message_start
        start_data = orjson.dumps({"type": "message_start", "message": message_head(self._meta)})
        return frame(self.framer.id(0), start_data, event=b"message_start") + PING

    def blocks(self, event: Event) -> list[Block]:
        return self._state.blocks(event)

    def encode_event(self, event: Event) -> bytes:
        state = self._state
        if event.kind == "token" and state.kind == "text" and state.open is not None:
            # The hot path: a token in the open text block is one block, written in
            # one formatting operation on a template the framing layer made.
            template = self._text_deltas.get(state.open)
            if template is None:
                data = _TEXT_DELTA % state.open
                template = self.framer.template(data, b"content_block_delta")
                self._text_deltas[state.open] = template
            return template % (orjson.dumps(event.text), event.seq)
        return self.frame(event, state.blocks(event))  # no id if unlogged

"""The `message` object of a non-streaming Messages request, built from the same typed
log events as the stream, by the same block rules, so that what a client accumulates
from the stream equals this answer. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable

import orjson

from app.core.events import Done, Event, StreamMeta
from app.wire.anthropic_messages import message_head, stop_reason, stop_sequence, usage_payload


class MessageBuilder:
    """Content blocks accumulated as a streaming client accumulates them: text and
    thinking appended, a signature replacing the one before, tool arguments joined and
    parsed at the end."""

    __slots__ = ("_arguments", "_content", "_open", "_refused", "_tools")

    def __init__(self) -> None:
        self._content: list[dict[str, object]] = []
        self._open: dict[str, object] | None = None  # the block deltas append to
        self._tools: dict[int, dict[str, object]] = {}  # tool call index -> its block
        self._arguments: dict[int, list[str]] = {}
        self._refused = False

    def feed(self, events: Iterable[Event]) -> None:
        for event in events:
            self._feed(event)

    def _feed(self, event: Event) -> None:
        kind = event.kind
        if kind in ("token", "refusal"):
            self._refused = self._refused or kind == "refusal"
            block = self._ensure("text", {"type": "text", "text": ""})
            block["text"] = str(block["text"]) + event.text
        elif kind == "reasoning":
            block = self._ensure("thinking", {"type": "thinking", "thinking": "", "signature": ""})
            block["thinking"] = str(block["thinking"]) + event.text
        elif kind == "reasoning_signature":
            block = self._ensure("thinking", {"type": "thinking", "thinking": "", "signature": ""})
            block["signature"] = event.text
            self._open = None  # a signature ends its thinking block
        elif kind == "reasoning_redacted":
            self._add({"type": "redacted_thinking", "data": event.text}, open_=False)
        elif kind == "tool_call":
            assert event.call is not None
            call = event.call
            block = {"type": "tool_use", "id": call.id, "name": call.name, "input": {}}
            self._tools[call.index] = block
            self._arguments[call.index] = []
            self._add(block, open_=False)
        elif kind == "tool_call_delta":
            self._arguments.setdefault(event.index, []).append(event.text)

    def _ensure(self, kind: str, empty: dict[str, object]) -> dict[str, object]:
        if self._open is not None and self._open["type"] == kind:
            return self._open
        return self._add(empty, open_=True)

    def _add(self, block: dict[str, object], *, open_: bool) -> dict[str, object]:
        self._content.append(block)
        self._open = block if open_ else None
        return block

    def content(self) -> list[dict[str, object]]:
        for index, parts in self._arguments.items():
            block = self._tools.get(index)
            joined = "".join(parts)
            if block is not None and joined:
                block["input"] = _parsed(joined)
        return self._content

    def message(self, meta: StreamMeta, done: Done) -> dict[str, object]:
        body = message_head(meta)
        body["content"] = self.content()
        body["stop_reason"] = stop_reason(done, self._refused)
        body["stop_sequence"] = stop_sequence(done)
        body["usage"] = usage_payload(done.usage)
        return body


def _parsed(arguments: str) -> object:
    """A tool call's arguments as the object they encode; arguments that are not JSON
    (a model's mistake) are kept as the string, which is what the client would see."""
    try:
        return orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return arguments

"""The output of an OpenAI Responses `response`, folded from a stream's log. Pure.

`ResponseFold` reads the log's typed events in order and keeps the output
items they build; for each event it also says which Responses stream events
describe the change (`Op`s, without sequence numbers: the wire numbers them).
Every process that folds the same log builds the same items and the same ops,
which is what makes a sequence number name one place in the log.

The items, in the order the model produced them:

- `message`: answer text (`output_text` parts) and refusals (`refusal` parts);
  a change from one to the other starts a new part;
- `reasoning`: reasoning text as one `summary_text` part; Anthropic's
  signature of that thinking becomes the item's `encrypted_content` (signed
  thinking with no text has one empty part); redacted thinking is an item of
  its own with no summary and its data as `encrypted_content`. A client can
  therefore tell the two apart when it sends them back;
- `function_call`: one per tool call, its arguments streamed as fragments.

A message or reasoning item is closed (`*.done` events) when anything else
starts; function calls stay open until something other than a call or its
fragments comes (fragments may interleave between calls), and everything
open is closed by the terminal event.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from app.core.events import Event

Op = tuple[str, dict[str, object]]
ItemKind = Literal["message", "reasoning", "function_call"]
_PART_KIND = {"token": "output_text", "refusal": "refusal"}
_PREFIX = {"message": "msg", "reasoning": "rs", "function_call": "fc"}


@dataclass(slots=True)
class Item:
    kind: ItemKind
    output_index: int
    id: str
    status: str = "in_progress"
    parts: list[tuple[str, list[str]]] = field(default_factory=list)  # message parts
    summary: list[str] = field(default_factory=list)  # reasoning text
    encrypted: list[str] = field(default_factory=list)  # signature / redacted data
    call_id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)

    def to_dict(self, *, empty: bool = False) -> dict[str, object]:
        """The item as OpenAI writes it; `empty`: as announced by output_item.added."""
        if self.kind == "message":
            content = [] if empty else [part_dict(kind, "".join(t)) for kind, t in self.parts]
            return {
                "id": self.id,
                "type": "message",
                "status": self.status,
                "role": "assistant",
                "content": content,
            }
        if self.kind == "reasoning":
            summary = [] if empty or not self.summary else [summary_part("".join(self.summary))]
            item: dict[str, object] = {"id": self.id, "type": "reasoning", "summary": summary}
            if self.encrypted and not empty:
                item["encrypted_content"] = "".join(self.encrypted)
            return item
        return {
            "id": self.id,
            "type": "function_call",
            "status": self.status,
            "arguments": "" if empty else "".join(self.arguments),
            "call_id": self.call_id,
            "name": self.name,
        }


def part_dict(kind: str, text: str) -> dict[str, object]:
    if kind == "refusal":
        return {"type": "refusal", "refusal": text}
    return {"type": "output_text", "annotations": [], "logprobs": [], "text": text}


def summary_part(text: str) -> dict[str, object]:
    return {"type": "summary_text", "text": text}


class ResponseFold:
    """The items a log has built so far, and the terminal event once it came."""

    __slots__ = ("_calls", "_open", "_stream_id", "items", "terminal", "text_sink")

    def __init__(self, stream_id: str) -> None:
        self._stream_id = stream_id
        self.items: list[Item] = []
        self._open: list[Item] = []  # items not closed yet, in output order
        self._calls: dict[int, Item] = {}  # open function calls by tool call index
        self.terminal: Event | None = None
        # The texts of the open output_text part, while a token would only extend
        # it: the wire's hot path appends to it without building any op.
        self.text_sink: list[str] | None = None

    # ---- reading ---------------------------------------------------------

    @property
    def text(self) -> str:
        """The answer's text: every output_text part, as the SDK's `output_text` joins them."""
        return "".join(
            "".join(texts)
            for item in self.items
            if item.kind == "message"
            for kind, texts in item.parts
            if kind == "output_text"
        )

    @property
    def refusal(self) -> str:
        return "".join(
            "".join(texts)
            for item in self.items
            if item.kind == "message"
            for kind, texts in item.parts
            if kind == "refusal"
        )

    def output(self) -> list[dict[str, object]]:
        return [item.to_dict() for item in self.items]

    def text_where(self) -> tuple[str, int, int]:
        """(item id, output index, content index) of the part `text_sink` fills."""
        item = self._open[-1]
        return item.id, item.output_index, len(item.parts) - 1

    # ---- folding ---------------------------------------------------------

    def add(self, event: Event) -> list[Op]:
        kind = event.kind
        self.text_sink = None
        if kind == "token" or kind == "refusal":
            return self._message_text(_PART_KIND[kind], event.text)
        if kind == "reasoning":
            return self._reasoning(event.text)
        if kind == "reasoning_signature":
            return self._signature(event.text)
        if kind == "reasoning_redacted":
            return self._redacted(event.text)
        if kind == "tool_call":
            return self._tool_call(event)
        if kind == "tool_call_delta":
            return self._arguments(event.index, event.text)
        self.terminal = event
        cut = event.failure is not None or (
            event.done is not None and event.done.finish_reason in ("length", "content_filter")
        )
        return self._close(self._open, "incomplete" if cut else None)

    def add_all(self, events: Sequence[Event]) -> None:
        for event in events:
            self.add(event)

    def _new(self, kind: ItemKind, call_id: str = "", name: str = "") -> tuple[Item, Op]:
        index = len(self.items)
        item = Item(kind, index, f"{_PREFIX[kind]}_{self._stream_id}_{index}")
        item.call_id, item.name = call_id, name
        self.items.append(item)
        self._open.append(item)
        added = {"output_index": index, "item": item.to_dict(empty=True)}
        return item, ("response.output_item.added", added)

    def _current(self, kind: ItemKind) -> Item | None:
        if self._open and self._open[-1].kind == kind:
            return self._open[-1]
        return None

    def _message_text(self, part_kind: str, text: str) -> list[Op]:
        ops: list[Op] = []
        item = self._current("message")
        if item is None:
            ops += self._close(self._open)
            item, added = self._new("message")
            ops.append(added)
        if not item.parts or item.parts[-1][0] != part_kind:
            if item.parts:
                ops += self._close_part(item)
            item.parts.append((part_kind, []))
            where = self._where(item)
            ops.append(("response.content_part.added", {**where, "part": part_dict(part_kind, "")}))
        item.parts[-1][1].append(text)
        if part_kind == "output_text":
            self.text_sink = item.parts[-1][1]
        name = (
            "response.output_text.delta" if part_kind == "output_text" else "response.refusal.delta"
        )
        extra: dict[str, object] = {"logprobs": []} if part_kind == "output_text" else {}
        ops.append((name, {**self._where(item), "delta": text, **extra}))
        return ops

    def _where(self, item: Item) -> dict[str, object]:
        return {
            "item_id": item.id,
            "output_index": item.output_index,
            "content_index": len(item.parts) - 1,
        }

    def _close_part(self, item: Item) -> list[Op]:
        kind, texts = item.parts[-1]
        text = "".join(texts)
        where = self._where(item)
        if kind == "output_text":
            done: Op = ("response.output_text.done", {**where, "text": text, "logprobs": []})
        else:
            done = ("response.refusal.done", {**where, "refusal": text})
        return [done, ("response.content_part.done", {**where, "part": part_dict(kind, text)})]

    def _summary_where(self, item: Item) -> dict[str, object]:
        return {"item_id": item.id, "output_index": item.output_index, "summary_index": 0}

    def _reasoning(self, text: str) -> list[Op]:
        ops: list[Op] = []
        item = self._current("reasoning")
        if item is None or item.encrypted:  # signed thinking is complete: a new block
            ops += self._close(self._open)
            item, added = self._new("reasoning")
            ops.append(added)
        where = self._summary_where(item)
        if not item.summary:
            ops.append(
                ("response.reasoning_summary_part.added", {**where, "part": summary_part("")})
            )
        item.summary.append(text)
        ops.append(("response.reasoning_summary_text.delta", {**where, "delta": text}))
        return ops

    def _signature(self, signature: str) -> list[Op]:
        item = self._current("reasoning")
        if item is None:  # a signature of empty thinking: an item of its own
            ops = self._close(self._open)
            item, added = self._new("reasoning")
            ops.append(added)
            # An empty summary part, not none: an item with no summary is redacted
            # thinking, and a client sending this one back must get a signature back.
            item.summary.append("")
            where = self._summary_where(item)
            ops.append(
                ("response.reasoning_summary_part.added", {**where, "part": summary_part("")})
            )
            item.encrypted.append(signature)
            return ops
        item.encrypted.append(signature)
        return []

    def _redacted(self, data: str) -> list[Op]:
        ops = self._close(self._open)
        item, added = self._new("reasoning")
        item.encrypted.append(data)
        ops.append(added)
        return ops + self._close([item])

    def _tool_call(self, event: Event) -> list[Op]:
        assert event.call is not None
        ops = self._close([i for i in self._open if i.kind != "function_call"])
        item, added = self._new("function_call", event.call.id, event.call.name)
        self._calls[event.call.index] = item
        return [*ops, added]

    def _arguments(self, index: int, fragment: str) -> list[Op]:
        item = self._calls.get(index)
        if item is None or item.status != "in_progress":
            return []  # a fragment of no open call: the provider's contract says none comes
        item.arguments.append(fragment)
        where = {"item_id": item.id, "output_index": item.output_index}
        return [("response.function_call_arguments.delta", {**where, "delta": fragment})]

    def _close(self, items: list[Item], status: str | None = None) -> list[Op]:
        ops: list[Op] = []
        for item in list(items):
            ops += self._close_one(item, status or "completed")
        return ops

    def _close_one(self, item: Item, status: str) -> list[Op]:
        self._open.remove(item)
        ops: list[Op] = []
        if item.kind == "message" and item.parts:
            ops += self._close_part(item)
        elif item.kind == "reasoning" and item.summary:
            where = self._summary_where(item)
            text = "".join(item.summary)
            ops.append(("response.reasoning_summary_text.done", {**where, "text": text}))
            ops.append(
                ("response.reasoning_summary_part.done", {**where, "part": summary_part(text)})
            )
        elif item.kind == "function_call":
            arguments = "".join(item.arguments)
            where = {"item_id": item.id, "output_index": item.output_index}
            ops.append(("response.function_call_arguments.done", {**where, "arguments": arguments}))
        item.status = status
        ops.append(
            (
                "response.output_item.done",
                {"output_index": item.output_index, "item": item.to_dict()},
            )
        )
        return ops

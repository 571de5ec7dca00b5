"""The OpenAI Responses streaming encoding: log events as `response.*` SSE events. Pure.

Every Responses event carries a `sequence_number` counted from 0 without
gaps. One log event becomes one or more Responses events (a group):

- position 0 (no log event; sent first): `response.created`, then for a
  background response `response.queued`, then `response.in_progress`;
- a token: `response.output_text.delta`, preceded for the first one by
  `response.output_item.added` and `response.content_part.added`;
- done: `response.output_text.done`, `response.content_part.done` and
  `response.output_item.done` when there is a message, then
  `response.completed`, or `response.incomplete` when the token limit or a
  content filter cut it;
- error: `error` (not for a cancel, which the client asked for) and
  `response.failed`, whose `response.status` is `failed` or `cancelled`.

Strategy (exact resume): the groups are a deterministic function of the log,
so a sequence number names one block of one log event for every reader in
every process (`replays`: a reader folds the log from its start). Every block
goes through the framing layer (`app.wire.framing`): the first block of log
event `seq`'s group is `<stream_id>:<seq>`, the next `<stream_id>:<seq>.1`,
and so on; the opening group is event 0's (`<stream_id>:0`, `:0.1`, ...). A
cut after any block therefore names a resume point that repeats nothing and
skips nothing. `starting_after=N` (a sequence number) is the other way in: the
blocks up to N are folded and not written.

Strategy (hot path): a reader that keeps up encodes a token with one
template and caches the bytes on the event (`Event.responses`): they depend
only on the stream, so every other reader reuses them.
"""

from __future__ import annotations

import orjson

from app.core.events import Event
from app.sse import EventId
from app.wire.framing import Block, FramedWire
from app.wire.responses_fold import Op, ResponseFold
from app.wire.responses_object import ResponseHead, Status, to_object

# One output_text delta's data, made once per text part: the delta's text
# (`%%s`) and its sequence number (`%%d`) go in per token.
_DELTA_DATA = (
    '{"type":"response.output_text.delta","item_id":"%s","output_index":%d,'
    '"content_index":%d,"delta":%%s,"logprobs":[],"sequence_number":%%d}'
)
_DELTA_EVENT = b"response.output_text.delta"


class ResponsesWire(FramedWire):
    """One reader's encoder: folds every event of the log; writes the blocks
    after `starting_after` (a sequence number, -1 for all)."""

    __slots__ = ("_after", "_fold", "_group_sn", "_head", "_sink", "_sn", "_template")

    # Strategy: a keep-alive comment line with no blank line after it. The
    # official SDK's decoder keeps the last `id:` and dispatches a blank line
    # after a comment as an event with empty data, which it then fails to
    # parse as JSON; a comment line alone dispatches nothing in any parser.
    heartbeat = b": ping\n"
    replays = True

    def __init__(self, head: ResponseHead, starting_after: int = -1) -> None:
        super().__init__(head.stream_id)
        self._head = head
        self._after = starting_after
        self._fold = ResponseFold(head.stream_id)
        self._sn = 0  # the next sequence number
        self._group_sn = 0  # the sequence number of the last group's first block
        self._sink: list[str] | None = None  # the text part `_template` was made for
        self._template = b""

    @property
    def fold(self) -> ResponseFold:
        return self._fold

    @property
    def opening_parts(self) -> int:
        return 3 if self._head.background else 2

    def opening(self, start: EventId | None) -> bytes:
        head, fold = self._head, self._fold
        first: Status = "queued" if head.background else "in_progress"
        group: list[Op] = [("response.created", {"response": to_object(head, fold, status=first)})]
        if head.background:
            group.append(("response.queued", {"response": to_object(head, fold)}))
        in_progress = to_object(head, fold, status="in_progress")
        group.append(("response.in_progress", {"response": in_progress}))
        blocks = self._number(group)
        held = 0 if start is None else start.part + 1 if start.seq == 0 else len(blocks)
        return self.framer.blocks(0, blocks, max(held, self._unsent()))

    def blocks(self, event: Event) -> list[Block]:
        group = self._fold.add(event)
        if event.terminal:
            group.append(self._terminal())
        return self._number(group)

    def encode_event(self, event: Event) -> bytes:
        fold = self._fold
        sink = fold.text_sink
        sn = self._sn
        if sink is not None and event.kind == "token" and sn > self._after:
            sink.append(event.text)
            self._sn = sn + 1
            cached = event.responses
            if cached is None:
                if sink is not self._sink:
                    self._sink = sink
                    data = (_DELTA_DATA % fold.text_where()).encode()
                    self._template = self.framer.template(data, _DELTA_EVENT)
                cached = self._template % (orjson.dumps(event.text), sn, event.seq)
                event.responses = cached
            return cached
        blocks = self.blocks(event)
        return self.frame(event, blocks, self._unsent())  # no id if unlogged

    def _unsent(self) -> int:
        """The first part of the last group after `starting_after`."""
        return max(0, self._after + 1 - self._group_sn)

    def _terminal(self) -> Op:
        head, fold = self._head, self._fold
        response = to_object(head, fold)
        status = response["status"]
        if status == "completed":
            return ("response.completed", {"response": response})
        if status == "incomplete":
            return ("response.incomplete", {"response": response})
        return ("response.failed", {"response": response})

    def _number(self, group: list[Op]) -> list[Block]:
        """The group's blocks, each with its sequence number."""
        failure = self._fold.terminal.failure if self._fold.terminal is not None else None
        if (
            failure is not None
            and failure.type != "cancelled"
            and group[-1][0] == "response.failed"
        ):
            # OpenAI's `error` event comes just before response.failed; a cancel,
            # which the client asked for, has none.
            error = {"type": failure.type, "code": failure.type, "message": failure.message}
            group.insert(len(group) - 1, ("error", {"error": {**error, "param": None}}))
        self._group_sn = self._sn
        blocks: list[Block] = []
        for name, payload in group:
            # orjson escapes every line break: the data is one line.
            data = orjson.dumps({"type": name, **payload, "sequence_number": self._sn})
            blocks.append(Block(data, name.encode()))
            self._sn += 1
        return blocks

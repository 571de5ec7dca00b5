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
every process. A reader folds the log from its start and writes only the
blocks after its resume point: `starting_after=N` (a sequence number) or a
Last-Event-ID. Each block's SSE id is its place in the log, and is the last
field of the block: `<stream_id>:<seq>` on the last block of log event
`seq`'s group, `<stream_id>:<seq>.<part>` (part 1, 2, ...) on the blocks
before it. A cut after any block therefore names a resume point that
repeats nothing and skips nothing.

Strategy (hot path): a reader that keeps up encodes a token with one
template and caches the bytes on the event (`Event.responses`): they depend
only on the stream, so every other reader reuses them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import orjson

from app.core.events import Done, Event, Failure
from app.errors import BadLastEventId
from app.sse import is_stream_id
from app.wire.responses_object import ResponseFold, ResponseHead, Status, message_id, text_part

_ALL_PARTS = math.inf
_EVENT_ID = re.compile(r"(?P<sid>[A-Za-z0-9_-]{16,64}):(?P<seq>\d{1,15})(?:\.(?P<part>\d{1,4}))?")
_DELTA = (
    b"event: response.output_text.delta\n"
    b'data: {"type":"response.output_text.delta","item_id":"%s","output_index":0,'
    b'"content_index":0,"delta":%s,"logprobs":[],"sequence_number":%d}\n'
    b"id: %s:%d\n\n"
)


def frame(name: str, data: bytes, event_id: str) -> bytes:
    """One SSE block: `event:`, one `data:` line (orjson escapes every line break), `id:` last."""
    return b"event: %s\ndata: %s\nid: %s\n\n" % (name.encode(), data, event_id.encode())


@dataclass(frozen=True, slots=True)
class ResumeAt:
    """Where a reader resumes: after a sequence number, or after a block named by an SSE id."""

    sequence_number: int = -1  # -1: from the first event
    seq: int = -1
    part: float = -1  # blocks 1..part of log event `seq` were received

    def skips(self, sn: int, seq: int, part: int) -> bool:
        return sn <= self.sequence_number or (seq, part) <= (self.seq, self.part)


FROM_START = ResumeAt()


def parse_resume_id(value: str) -> tuple[str, ResumeAt]:
    """`<stream_id>:<seq>` or `<stream_id>:<seq>.<part>` -> (stream id, resume point)."""
    match = _EVENT_ID.fullmatch(value.strip())
    if match is None or not is_stream_id(match["sid"]):
        raise BadLastEventId(
            f"Last-Event-ID {value[:80]!r} is not of the form '<stream_id>:<seq>[.<part>]'",
            param="Last-Event-ID",
        )
    part = match["part"]
    return match["sid"], ResumeAt(
        seq=int(match["seq"]), part=_ALL_PARTS if part is None else int(part)
    )


class ResponsesWire:
    """One reader's encoder: folds every event of the log, writes those after `resume`."""

    __slots__ = ("_fold", "_head", "_item", "_msg_open", "_resume", "_sid", "_sn", "ended")

    def __init__(self, head: ResponseHead, resume: ResumeAt = FROM_START) -> None:
        self._head = head
        self._resume = resume
        self._sid = head.stream_id.encode()
        self._item = message_id(head.stream_id, 0).encode()
        self._fold = ResponseFold()
        self._msg_open = False
        self._sn = 0  # the next sequence number
        self.ended = False  # the terminal group was written (or skipped)

    @property
    def fold(self) -> ResponseFold:
        return self._fold

    def preamble(self) -> bytes:
        head = self._head
        first: Status = "queued" if head.background else "in_progress"
        group: list[tuple[str, dict[str, object]]] = [
            ("response.created", {"response": self._fold.to_object(head, status=first)})
        ]
        if head.background:
            group.append(("response.queued", {"response": self._fold.to_object(head)}))
        in_progress = self._fold.to_object(head, status="in_progress")
        group.append(("response.in_progress", {"response": in_progress}))
        return self._write(0, group)

    def encode(self, events: Sequence[Event]) -> bytes:
        return b"".join([self.encode_event(event) for event in events])

    def encode_event(self, event: Event) -> bytes:
        if event.kind == "token" and self._msg_open and not self._skipping(event.seq):
            self._fold.add(event)
            sn = self._sn
            self._sn += 1
            cached = event.responses
            if cached is None:
                text = orjson.dumps(event.text)
                cached = _DELTA % (self._item, text, sn, self._sid, event.seq)
                event.responses = cached
            return cached
        return self._write(event.seq, self._group(event))

    def _skipping(self, seq: int) -> bool:
        return self._resume.skips(self._sn, seq, 1)

    # ---- groups ----------------------------------------------------------

    def _group(self, event: Event) -> list[tuple[str, dict[str, object]]]:
        group: list[tuple[str, dict[str, object]]] = []
        if event.kind == "token":
            if not self._msg_open:
                group += self._open_message()
            group.append(("response.output_text.delta", self._delta(event.text)))
            self._fold.add(event)
            return group
        self._fold.add(event)
        self.ended = True
        if event.done is not None:
            return self._done(event.done)
        assert event.failure is not None
        return self._failed(event.failure)

    def _open_message(self) -> list[tuple[str, dict[str, object]]]:
        self._msg_open = True
        item = self._fold.message_item(self._head.stream_id, "in_progress")
        where = {"item_id": self._item.decode(), "output_index": 0, "content_index": 0}
        return [
            ("response.output_item.added", {"output_index": 0, "item": item}),
            ("response.content_part.added", {**where, "part": text_part("")}),
        ]

    def _delta(self, text: str) -> dict[str, object]:
        return {
            "item_id": self._item.decode(),
            "output_index": 0,
            "content_index": 0,
            "delta": text,
            "logprobs": [],
        }

    def _close_message(self, item_status: str) -> list[tuple[str, dict[str, object]]]:
        if not self._msg_open:
            return []
        text = self._fold.text
        where = {"item_id": self._item.decode(), "output_index": 0, "content_index": 0}
        item = self._fold.message_item(self._head.stream_id, item_status)
        return [
            ("response.output_text.done", {**where, "text": text, "logprobs": []}),
            ("response.content_part.done", {**where, "part": text_part(text)}),
            ("response.output_item.done", {"output_index": 0, "item": item}),
        ]

    def _done(self, done: Done) -> list[tuple[str, dict[str, object]]]:
        response = self._fold.to_object(self._head)
        status = response["status"]
        group = self._close_message("completed" if status == "completed" else "incomplete")
        name = "response.completed" if status == "completed" else "response.incomplete"
        group.append((name, {"response": response}))
        return group

    def _failed(self, failure: Failure) -> list[tuple[str, dict[str, object]]]:
        group: list[tuple[str, dict[str, object]]] = []
        if failure.type != "cancelled":
            error = {"type": failure.type, "code": failure.type, "message": failure.message}
            group.append(("error", {"error": {**error, "param": None}}))
        group.append(("response.failed", {"response": self._fold.to_object(self._head)}))
        return group

    # ---- framing ---------------------------------------------------------

    def _write(self, seq: int, group: list[tuple[str, dict[str, object]]]) -> bytes:
        blocks: list[bytes] = []
        sid = self._head.stream_id
        last = len(group)
        for part, (name, payload) in enumerate(group, start=1):
            sn = self._sn
            self._sn += 1
            if self._resume.skips(sn, seq, part):
                continue
            data = orjson.dumps({"type": name, **payload, "sequence_number": sn})
            event_id = f"{sid}:{seq}" if part == last else f"{sid}:{seq}.{part}"
            blocks.append(frame(name, data, event_id))
        return b"".join(blocks)

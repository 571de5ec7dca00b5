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
field of the block: `<stream_id>:<seq>` on the first block of log event
`seq`'s group, `<stream_id>:<seq>.<part>` (part 1, 2, ...) on the blocks
after it; the opening is seq 0. A cut after any block therefore names a
resume point that repeats nothing and skips nothing.

Strategy (hot path): a reader that keeps up encodes a token with one
template and caches the bytes on the event (`Event.responses`): they depend
only on the stream, so every other reader reuses them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import orjson

from app.core.events import Event
from app.errors import BadLastEventId
from app.sse import is_stream_id
from app.wire.responses_fold import Op, ResponseFold
from app.wire.responses_object import ResponseHead, Status, to_object

# Canonical ids only: no leading zeros, no `.0` part (the first block has no part).
_EVENT_ID = re.compile(
    r"(?P<sid>[A-Za-z0-9_-]{16,64}):(?P<seq>0|[1-9]\d{0,14})(?:\.(?P<part>[1-9]\d{0,3}))?"
)
# One output_text delta block: the prefix is made once per text part.
_DELTA_PREFIX = (
    "event: response.output_text.delta\n"
    'data: {"type":"response.output_text.delta","item_id":"%s","output_index":%d,'
    '"content_index":%d,"delta":'
)
_DELTA_TAIL = b',"logprobs":[],"sequence_number":%d}\nid: %s:%d\n\n'


def frame(name: str, data: bytes, event_id: str) -> bytes:
    """One SSE block: `event:`, one `data:` line (orjson escapes every line break), `id:` last.

    The one place this wire frames a block: the shared framing function takes its place."""
    return b"event: %s\ndata: %s\nid: %s\n\n" % (name.encode(), data, event_id.encode())


@dataclass(frozen=True, slots=True)
class ResumeAt:
    """Where a reader resumes: after a sequence number, or after a block named by an SSE id."""

    sequence_number: int = -1  # -1: from the first event
    seq: int = -1
    part: int = -1  # blocks 0..part of log event `seq` were received

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
    return match["sid"], ResumeAt(seq=int(match["seq"]), part=0 if part is None else int(part))


class ResponsesWire:
    """One reader's encoder: folds every event of the log, writes those after `resume`."""

    __slots__ = ("_after", "_fold", "_head", "_prefix", "_resume", "_sid", "_sink", "_sn")

    # Strategy: a keep-alive comment line with no blank line after it. The
    # official SDK's decoder keeps the last `id:` and dispatches a blank line
    # after a comment as an event with empty data, which it then fails to
    # parse as JSON; a comment line alone dispatches nothing in any parser.
    heartbeat = b": ping\n"

    def __init__(self, head: ResponseHead, resume: ResumeAt = FROM_START) -> None:
        self._head = head
        self._resume = resume
        self._sid = head.stream_id.encode()
        self._fold = ResponseFold(head.stream_id)
        self._sn = 0  # the next sequence number
        self._after = (resume.sequence_number, resume.seq)  # hot path: past the resume point
        self._sink: list[str] | None = None  # the text part `_prefix` was made for
        self._prefix = b""

    @property
    def fold(self) -> ResponseFold:
        return self._fold

    def preamble(self) -> bytes:
        head, fold = self._head, self._fold
        first: Status = "queued" if head.background else "in_progress"
        group: list[Op] = [("response.created", {"response": to_object(head, fold, status=first)})]
        if head.background:
            group.append(("response.queued", {"response": to_object(head, fold)}))
        in_progress = to_object(head, fold, status="in_progress")
        group.append(("response.in_progress", {"response": in_progress}))
        return self._write(0, group)

    def encode(self, events: Sequence[Event]) -> bytes:
        return b"".join([self.encode_event(event) for event in events])

    def encode_event(self, event: Event) -> bytes:
        fold = self._fold
        sink = fold.text_sink
        sn = self._sn
        if (
            sink is not None
            and event.kind == "token"
            and sn > self._after[0]
            and event.seq > self._after[1]
        ):
            sink.append(event.text)
            self._sn = sn + 1
            cached = event.responses
            if cached is None:
                if sink is not self._sink:
                    self._sink = sink
                    self._prefix = (_DELTA_PREFIX % fold.text_where()).encode()
                tail = _DELTA_TAIL % (sn, self._sid, event.seq)
                cached = event.responses = self._prefix + orjson.dumps(event.text) + tail
            return cached
        group = fold.add(event)
        if event.terminal:
            group.append(self._terminal())
        return self._write(event.seq, group)

    def _terminal(self) -> Op:
        head, fold = self._head, self._fold
        response = to_object(head, fold)
        status = response["status"]
        if status == "completed":
            return ("response.completed", {"response": response})
        if status == "incomplete":
            return ("response.incomplete", {"response": response})
        return ("response.failed", {"response": response})

    def _write(self, seq: int, group: list[Op]) -> bytes:
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
        blocks: list[bytes] = []
        sid = self._head.stream_id
        for part, (name, payload) in enumerate(group):
            sn = self._sn
            self._sn += 1
            if self._resume.skips(sn, seq, part):
                continue
            data = orjson.dumps({"type": name, **payload, "sequence_number": sn})
            event_id = f"{sid}:{seq}.{part}" if part else f"{sid}:{seq}"
            blocks.append(frame(name, data, event_id))
        return b"".join(blocks)

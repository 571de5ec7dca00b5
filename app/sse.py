"""Server-Sent Events framing and Sluice's event ids. Pure: no I/O.

An event id is `<stream_id>:<seq>` or `<stream_id>:<seq>.<part>`; the stream
id is URL-safe base64 (no colon), so the last colon splits the two. `frame`
writes every block of every wire, with `id:` last. Text is split into several
`data:` lines at every line terminator the SSE spec knows (\\r\\n, \\r, \\n),
which is what a spec-conformant parser joins back with \\n.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from app.errors import BadLastEventId

PING = b": ping\n\n"
STREAM_ID_BYTES = 16  # 128 random bits
_STREAM_ID = re.compile(r"[A-Za-z0-9_-]{16,64}")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_MAX_SEQ = 2**53  # beyond what any JavaScript client can hold exactly


def new_stream_id() -> str:
    return secrets.token_urlsafe(STREAM_ID_BYTES)


def is_stream_id(value: str) -> bool:
    return _STREAM_ID.fullmatch(value) is not None


@dataclass(frozen=True, slots=True, order=True)
class EventId:
    """A resume point: block `part` of event `seq` of a stream.

    `<stream_id>:<seq>` names an event's first block (part 0) and
    `<stream_id>:<seq>.<part>` a later block of the same event, for wires that
    write one log event as several blocks. Seq 0 is the opening of a response,
    before the first event: resuming after it replays from event 1.
    """

    stream_id: str
    seq: int
    part: int = 0

    def __str__(self) -> str:
        if self.part:
            return f"{self.stream_id}:{self.seq}.{self.part}"
        return f"{self.stream_id}:{self.seq}"


def event_id(stream_id: str, seq: int, part: int = 0) -> str:
    return str(EventId(stream_id, seq, part))


def _number(text: str, value: str, what: str) -> int:
    # isdigit() alone admits non-ASCII digits ("٣"); int() would read them.
    if not text.isascii() or not text.isdigit() or len(text) > 16:
        raise BadLastEventId(
            f"Last-Event-ID {value[:80]!r} has no valid {what}", param="Last-Event-ID"
        )
    number = int(text)
    if number >= _MAX_SEQ:
        raise BadLastEventId(
            f"Last-Event-ID {value[:80]!r}: {what} too large", param="Last-Event-ID"
        )
    return number


def parse_event_id(value: str) -> EventId:
    """`<stream_id>:<seq>` or `<stream_id>:<seq>.<part>` -> EventId; BadLastEventId
    names the problem. Ids are canonical: no `.0` part, no leading zeros."""
    stream_id, sep, point = value.strip().rpartition(":")
    if not sep:
        raise BadLastEventId(
            f"Last-Event-ID {value[:80]!r} is not of the form '<stream_id>:<seq>'",
            param="Last-Event-ID",
        )
    if not is_stream_id(stream_id):
        raise BadLastEventId(
            f"Last-Event-ID {value[:80]!r} does not name a stream", param="Last-Event-ID"
        )
    seq_text, dot, part_text = point.partition(".")
    seq = _number(seq_text, value, "sequence number")
    part = _number(part_text, value, "part number") if dot else 0
    if (dot and part == 0) or str(seq) != seq_text or (dot and str(part) != part_text):
        raise BadLastEventId(
            f"Last-Event-ID {value[:80]!r} is not an id Sluice wrote", param="Last-Event-ID"
        )
    return EventId(stream_id, seq, part)


def encode_data(data: str) -> str:
    """The `data:` lines for a payload, one per line of it."""
    if "\n" not in data and "\r" not in data:
        return f"data: {data}\n"
    return "".join(f"data: {line}\n" for line in _LINE_BREAK.split(data))


def frame(
    id: bytes | None,
    data: bytes | None = None,
    *,
    event: bytes | None = None,
    retry: int | None = None,
) -> bytes:
    """One block, the only way any wire writes one: `event:`, `data:`, `retry:`,
    then `id:` last, then the blank line that dispatches it. `id` None writes a
    block without an `id:` line: only a reader's own terminal event, in no log
    (`Event.unlogged`), is written so, and the client keeps the id it held.

    Why id last: a client that takes the id as soon as it reads the line (as
    `@microsoft/fetch-event-source` does, unlike EventSource) then holds the id
    of a block only once it holds the block's data, so a cut inside a block
    never makes it skip that block; only a cut between the `id:` line and the
    blank line still can, for such a client. `data` must be one line (the
    JSON encoders escape every control character); `encode_data` splits text.
    """
    if id is None:
        head = b"event: %s\n" % event if event is not None else b""
        if data is not None:
            head += b"data: %s\n" % data
        if retry is not None:
            head += b"retry: %d\n" % retry
        return head + b"\n"
    if retry is None and data is not None:  # every event block: one formatting operation
        if event is None:
            return b"data: %s\nid: %s\n\n" % (data, id)
        return b"event: %s\ndata: %s\nid: %s\n\n" % (event, data, id)
    head = b"event: %s\n" % event if event is not None else b""
    if data is not None:
        head += b"data: %s\n" % data
    if retry is not None:
        head += b"retry: %d\n" % retry
    return head + b"id: %s\n\n" % id


def encode_event(data: str, *, event: str | None = None, id: str | None = None) -> bytes:
    """A block of free text (several `data:` lines if it has line breaks), id last."""
    head = f"event: {event}\n" if event is not None else ""
    tail = f"id: {id}\n" if id is not None else ""
    return (head + encode_data(data) + tail + "\n").encode()


def encode_comment(text: str) -> bytes:
    return "".join(f": {line}\n" for line in _LINE_BREAK.split(text)).encode() + b"\n"

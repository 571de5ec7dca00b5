"""Server-Sent Events framing and Sluice's event ids. Pure: no I/O.

An event id is `<stream_id>:<seq>`; the stream id is URL-safe base64 (no
colon), so the last colon splits the two. Text is split into several `data:`
lines at every line terminator the SSE spec knows (\\r\\n, \\r, \\n), which
is what a spec-conformant parser joins back with \\n.
"""

from __future__ import annotations

import re
import secrets

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


def event_id(stream_id: str, seq: int) -> str:
    return f"{stream_id}:{seq}"


def parse_event_id(value: str) -> tuple[str, int]:
    """`<stream_id>:<seq>` -> (stream_id, seq); BadLastEventId names the problem."""
    stream_id, sep, seq_text = value.strip().rpartition(":")
    if not sep:
        raise BadLastEventId(
            f"Last-Event-ID {value[:80]!r} is not of the form '<stream_id>:<seq>'",
            param="Last-Event-ID",
        )
    if not is_stream_id(stream_id):
        raise BadLastEventId(
            f"Last-Event-ID {value[:80]!r} does not name a stream", param="Last-Event-ID"
        )
    if not seq_text.isascii() or not seq_text.isdigit() or len(seq_text) > 16:
        raise BadLastEventId(
            f"Last-Event-ID {value[:80]!r} has no valid sequence number", param="Last-Event-ID"
        )
    seq = int(seq_text)
    if not 1 <= seq < _MAX_SEQ:
        raise BadLastEventId(
            f"Last-Event-ID {value[:80]!r}: sequence numbers start at 1", param="Last-Event-ID"
        )
    return stream_id, seq


def encode_data(data: str) -> str:
    """The `data:` lines for a payload, one per line of it."""
    if "\n" not in data and "\r" not in data:
        return f"data: {data}\n"
    return "".join(f"data: {line}\n" for line in _LINE_BREAK.split(data))


def encode_event(data: str, *, event: str | None = None, id: str | None = None) -> bytes:
    """One complete event block, terminated by the blank line that dispatches it."""
    head = ""
    if id is not None:
        head += f"id: {id}\n"
    if event is not None:
        head += f"event: {event}\n"
    return (head + encode_data(data) + "\n").encode()


def encode_retry(ms: int) -> bytes:
    return f"retry: {ms}\n\n".encode()


def encode_comment(text: str) -> bytes:
    return "".join(f": {line}\n" for line in _LINE_BREAK.split(text)).encode() + b"\n"

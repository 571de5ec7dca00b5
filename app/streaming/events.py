"""The events of a stream's log and the stream's identity. Pure: no I/O.

An `Event` is what the producer appends and every reader replays. Its wire
bytes are made at most once per wire format, by the first reader that needs
them, and reused by every later reader and replay: the only mutable fields
are those write-once caches.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from app.providers.base import FinishReason, Usage

EventKind = Literal["token", "done", "error"]


@dataclass(frozen=True, slots=True)
class Done:
    finish_reason: FinishReason
    usage: Usage
    ttft_ms: float | None
    tokens_per_second: float | None


@dataclass(frozen=True, slots=True)
class Failure:
    type: str
    message: str
    retryable: bool


@dataclass(slots=True, eq=False)
class Event:
    seq: int
    kind: EventKind
    text: str = ""
    done: Done | None = None
    failure: Failure | None = None
    # A reader's own terminal event (its store failed it), in no log: it goes out
    # without an `id:` line, so the client keeps the id of the last event it got,
    # and `seq` is that event's, for the reader's own accounting only.
    unlogged: bool = False
    native: bytes | None = None  # cache: app.wire.native
    openai: bytes | None = None  # cache: app.wire.openai (token events only)

    @property
    def terminal(self) -> bool:
        return self.kind != "token"


def token(seq: int, text: str) -> Event:
    return Event(seq, "token", text=text)


@dataclass(frozen=True, slots=True)
class StreamMeta:
    """What every process needs to serve a stream: who owns it and how to name it."""

    stream_id: str
    model: str
    created: int  # unix seconds, as in OpenAI's `created`
    owner: str  # identity of the creating API key ("" when auth is off)

"""What a stream is made of: its typed events and its identity. PURE: no I/O.

The lowest layer of the gateway: providers, the log, the resume store and
every wire import these types, and this package imports nothing of theirs.

One log event per upstream delta, each with its own seq:

    token               text of the answer
    reasoning           reasoning / thinking text
    reasoning_signature Anthropic's signature of the thinking before it (kept byte for byte)
    reasoning_redacted  Anthropic's redacted thinking, its opaque data (kept byte for byte)
    tool_call           a tool call starts: `call` holds its index, id and name
    tool_call_delta     a fragment of tool call `index`'s arguments, as it arrived
    refusal             text of a refusal
    done | error        the terminal event: finish reason and usage, or a failure

An `Event`'s wire bytes are made at most once per wire format, by the first
reader that needs them, and reused by every later reader and replay: the
only mutable fields are those write-once caches.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

EventKind = Literal[
    "token",
    "reasoning",
    "reasoning_signature",
    "reasoning_redacted",
    "tool_call",
    "tool_call_delta",
    "refusal",
    "done",
    "error",
]
# The kinds of a delta (every kind but the terminal ones).
DeltaKind = Literal[
    "token",
    "reasoning",
    "reasoning_signature",
    "reasoning_redacted",
    "tool_call",
    "tool_call_delta",
    "refusal",
]
DELTA_KINDS: tuple[DeltaKind, ...] = (
    "token",
    "reasoning",
    "reasoning_signature",
    "reasoning_redacted",
    "tool_call",
    "tool_call_delta",
    "refusal",
)
FinishReason = Literal["stop", "length", "tool_calls", "content_filter"]


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts; `cached_tokens` (of the input) and `reasoning_tokens` (of
    the output) only where the provider reports them (None: not reported)."""

    input_tokens: int
    output_tokens: int
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class ToolCall:
    """The start of a tool call. `index` counts the calls of one answer from 0,
    whatever the provider numbers them by (Anthropic counts content blocks)."""

    index: int
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class Done:
    finish_reason: FinishReason
    usage: Usage
    ttft_ms: float | None
    tokens_per_second: float | None
    stop: UpstreamStop | None = None  # the upstream's own reason, where it said more


@dataclass(frozen=True, slots=True)
class UpstreamStop:
    """What an upstream said of its stop beyond the finish reason: Anthropic's
    `stop_sequence` (with the sequence matched) and `pause_turn` both finish
    with `stop`, and a client of the Messages door must still be told which."""

    reason: str
    sequence: str | None = None


@dataclass(frozen=True, slots=True)
class Failure:
    type: str
    message: str
    retryable: bool
    code: str | None = None  # the upstream's own kind of error, where it named one


@dataclass(slots=True, eq=False)
class Event:
    """`text` is the delta's text (a token, reasoning, a signature, redacted data,
    an arguments fragment, a refusal); `index` the tool call an arguments
    fragment belongs to; `call` the start of a tool call."""

    seq: int
    kind: EventKind
    text: str = ""
    done: Done | None = None
    failure: Failure | None = None
    # A reader's own terminal event (its store failed it: log_lost, unavailable),
    # in no log: it goes out without an `id:` line, so the client keeps the id of
    # the last block it got, and `seq` is that event's, for the reader's own
    # accounting only.
    unlogged: bool = False
    native: bytes | None = None  # cache: app.wire.native
    openai: bytes | None = None  # cache: app.wire.openai (delta events only)
    responses: bytes | None = None  # cache: app.wire.openai_responses (token events only)
    index: int = 0
    call: ToolCall | None = None

    @property
    def terminal(self) -> bool:
        return self.kind == "done" or self.kind == "error"


def token(seq: int, text: str) -> Event:
    return Event(seq, "token", text=text)


@dataclass(frozen=True, slots=True)
class StreamMeta:
    """What every process needs to serve a stream: who owns it and how to name it."""

    stream_id: str
    model: str
    created: int  # unix seconds, as in OpenAI's `created`
    owner: str  # identity of the creating API key ("" when auth is off)

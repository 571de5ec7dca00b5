"""What every wire shares: how an event becomes SSE blocks and what their ids
mean. Pure: no I/O.

A wire says what one log event reads as on it, as a sequence of `Block`s
(most events: one; the OpenAI wire's done event: finish, usage, `[DONE]`).
This module numbers and frames them, so that the rule holds on every wire,
those written later included, by construction rather than by care:

- part 0 of event N carries `id: <stream_id>:N`, part p carries
  `id: <stream_id>:N.p`: no two blocks share an id;
- each id names the point just after its block: resuming after
  `<stream_id>:N.p` sends parts p+1… of event N, then events N+1…, so a
  client holding any id it was sent repeats nothing and skips nothing;
- `id:` is the last field of every block (`app.sse.frame`);
- a reader's own terminal event (`Event.unlogged`: log_lost, unavailable),
  which is in no log, is framed without an `id:` line (`FramedWire.frame`):
  it repeats no id already written, and the client keeps the last one it got.

A wire also writes a response's opening, before any event (`opening`):
sent with the headers, before the upstream answers.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

from app.core.events import Event
from app.errors import BadLastEventId
from app.sse import PING, EventId, frame


@dataclass(frozen=True, slots=True)
class Block:
    """One SSE block's payload before framing: a single-line `data` and an
    optional `event:` name."""

    data: bytes
    event: bytes | None = None


class Framer:
    """Frames the blocks of one stream with their ids."""

    __slots__ = ("_prefix", "_templates")

    def __init__(self, stream_id: str) -> None:
        self._prefix = stream_id.encode() + b":"
        self._templates: dict[bytes | None, bytes] = {}  # by event name

    def id(self, seq: int, part: int = 0) -> bytes:
        if part:
            return b"%s%d.%d" % (self._prefix, seq, part)
        return b"%s%d" % (self._prefix, seq)

    def event(self, seq: int, data: bytes, event: bytes | None = None) -> bytes:
        """The first (often only) block of event `seq`: the per-token path."""
        template = self._templates.get(event)
        if template is None:
            template = self._templates[event] = self.template(b"%s", event)
        return template % (data, seq)

    def template(self, data: bytes, event: bytes | None = None) -> bytes:
        """The first block of an event as a %-template: `data` with its own
        placeholders (`%%` for a literal %), then `%d` for the seq.

        Strategy: `frame` writes the template once per response; each token is
        then one formatting operation on it, as fast as a hand-written block,
        yet framed by the one function every wire goes through."""
        escaped_event = event.replace(b"%", b"%%") if event is not None else None
        template = frame(self._prefix.replace(b"%", b"%%") + b"%d", data, event=escaped_event)
        # The seq is the last operand, which holds because the id is the last field.
        assert template.endswith(b"%d\n\n")
        return template

    def block(self, seq: int, block: Block, part: int = 0) -> bytes:
        return frame(self.id(seq, part), block.data, event=block.event)

    def blocks(self, seq: int, blocks: Sequence[Block], first: int = 0) -> bytes:
        """Parts `first`… of event `seq`, framed."""
        if first == 0 and len(blocks) == 1:
            return self.block(seq, blocks[0])
        return b"".join([self.block(seq, blocks[p], p) for p in range(first, len(blocks))])

    @staticmethod
    def unlogged(blocks: Sequence[Block], first: int = 0) -> bytes:
        """Parts `first`… of an event in no log, framed without ids."""
        return b"".join([frame(None, b.data, event=b.event) for b in blocks[first:]])


class FramedWire(ABC):
    """The base of every wire. A wire implements `blocks` and `opening`; it may
    override `encode_event` to cache, never to frame differently."""

    __slots__ = ("framer",)
    reconnects = False  # whether its clients reconnect by themselves (EventSource)
    heartbeat = PING  # what is sent while no event is due
    # Whether an event's blocks depend on the events before it (which block is
    # open, a running sequence number): a resume then reads the log from its
    # start and `skip`s the events the client holds whole.
    replays = False

    def __init__(self, stream_id: str) -> None:
        self.framer = Framer(stream_id)

    @abstractmethod
    def blocks(self, event: Event) -> Sequence[Block]:
        """What `event` reads as on this wire, block by block."""

    @abstractmethod
    def opening(self, start: EventId | None) -> bytes:
        """The first bytes of a response that starts fresh (`start` None) or
        resumes after `start`."""

    @property
    def opening_parts(self) -> int:
        """How many blocks the opening has a client may hold the id of (`<sid>:0.<p>`)."""
        return 1

    def skip(self, event: Event) -> None:
        """An event the client holds whole: advance the wire's state, write nothing."""
        self.blocks(event)

    def encode_event(self, event: Event) -> bytes:
        return self.frame(event, self.blocks(event))

    def frame(self, event: Event, blocks: Sequence[Block], first: int = 0) -> bytes:
        """Parts `first`… of `event`, framed: with ids if it is in the log, without
        if it is a reader's own ending (`Event.unlogged`). Every wire frames a
        terminal event through here."""
        if event.unlogged:
            return self.framer.unlogged(blocks, first)
        return self.framer.blocks(event.seq, blocks, first)

    def encode(self, events: Sequence[Event]) -> bytes:
        if len(events) == 1:
            return self.encode_event(events[0])
        return b"".join([self.encode_event(e) for e in events])

    def rest_of(self, event: Event, part: int) -> bytes:
        """The blocks of `event` after part `part`: what a client holding the id
        of that part has not seen (b"" when it has them all)."""
        blocks = self.blocks(event)
        if part >= len(blocks):
            raise BadLastEventId(
                f"Last-Event-ID names part {part} of event {event.seq}, "
                f"which has {len(blocks)} part(s) on this endpoint",
                param="Last-Event-ID",
            )
        return self.framer.blocks(event.seq, blocks, part + 1)
